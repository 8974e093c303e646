package awsgateway

import (
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/spotrunner/spotrunner/internal/world"
)

// The messages AWS refuses a too-long value with, as internal/world/ssm.go quotes them (where
// they are unexported; keep the two in step).
const (
	ssmStandardTooLong = "Standard tier parameters support a maximum parameter value of 4096 characters. " +
		"To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier. " +
		"For more information, see https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html"
	ssmAdvancedTooLong = "Advanced tier parameters support a maximum parameter value of 8192 characters."
)

// Parameter tiers, as SSM names them.
const (
	tierStandard     = "Standard"
	tierAdvanced     = "Advanced"
	tierIntelligent  = "Intelligent-Tiering"
	maxStandardChars = world.SSMStandardMax
	maxAdvancedChars = world.SSMAdvancedMax
)

// putParameter checks a PutParameter value against its tier as internal/world.SSM does (its doc
// lists the rules), answers AWS's ValidationException when it is too long, and otherwise passes
// the request to moto with the tier AWS would store it in.
func (g *Gateway) putParameter(w http.ResponseWriter, req *request, log zerolog.Logger) {
	body, err := req.readBody()
	if err != nil {
		writeError(w, req, http.StatusBadRequest, "SerializationException", "awsgateway: "+err.Error())
		return
	}
	var doc map[string]json.RawMessage
	var value, tier string
	if json.Unmarshal(body, &doc) != nil || unmarshalOptional(doc["Value"], &value) != nil || unmarshalOptional(doc["Tier"], &tier) != nil {
		g.forward(w, req) // not ours to judge: moto answers it as it does
		return
	}
	chosen, refusal := tierFor(utf8.RuneCountInString(value), tier, g.opts.SSMDefaultTier)
	if refusal != "" {
		log.Info().Int("chars", utf8.RuneCountInString(value)).Str("tier", tier).Msg("awsgateway: PutParameter refused: value too long for its tier")
		writeError(w, req, http.StatusBadRequest, "ValidationException", refusal)
		return
	}
	if chosen != tier {
		doc["Tier"], _ = json.Marshal(chosen)
		b, err := json.Marshal(doc)
		if err != nil {
			writeError(w, req, http.StatusInternalServerError, "InternalServerError", "awsgateway: "+err.Error())
			return
		}
		req.setBody(b)
	}
	g.forward(w, req)
}

func unmarshalOptional(raw json.RawMessage, v any) error {
	if raw == nil {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// tierFor returns the tier AWS stores a value of n characters in when asked for tier (with the
// account's defaultTier when tier is ""), or the message it refuses the value with. Mirrors
// internal/world.SSM.tierFor.
func tierFor(n int, tier, defaultTier string) (string, string) {
	asked := tier
	if tier == "" {
		tier = defaultTier
	}
	switch tier {
	case "", tierStandard:
		if n > maxStandardChars {
			return "", ssmStandardTooLong
		}
		return asked, ""
	case tierIntelligent:
		if n <= maxStandardChars {
			return tierStandard, ""
		}
		tier = tierAdvanced
	}
	if n > maxAdvancedChars {
		return "", ssmAdvancedTooLong
	}
	return tier, ""
}
