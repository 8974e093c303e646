package world

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
)

// TestSSMPutParameter needs moto. Fixtures: none; each case puts one new parameter (its own
// name) through SSM. A value within its tier's limit must be stored in the tier AWS would
// choose, and read back whole; one over the limit must be refused with the SDK's error for
// AWS's ValidationException, message included, and never reach moto. Tags with Overwrite, which
// moto refuses itself, must still be refused through the layer.
func TestSSMPutParameter(t *testing.T) {
	t.Parallel()
	api := NewSSM(AWS(t))
	tests := []struct {
		name        string
		defaultTier types.ParameterTier // the account's; "" for Standard
		tier        types.ParameterTier
		length      int
		typ         types.ParameterType // "" for String
		overwrite   bool
		tags        bool
		wantTier    types.ParameterTier // stored; "" when refused
		wantMsg     string              // the refusal's message, or a prefix of it
	}{
		{name: "Standard at its limit", tier: types.ParameterTierStandard, length: 4096, wantTier: types.ParameterTierStandard},
		{name: "Standard one over", tier: types.ParameterTierStandard, length: 4097, wantMsg: ssmStandardTooLong},
		{name: "Advanced at its limit", tier: types.ParameterTierAdvanced, length: 8192, wantTier: types.ParameterTierAdvanced},
		{name: "Advanced one over", tier: types.ParameterTierAdvanced, length: 8193, wantMsg: ssmAdvancedTooLong},
		{name: "Intelligent-Tiering small stays Standard", tier: types.ParameterTierIntelligentTiering, length: 4096, wantTier: types.ParameterTierStandard},
		{name: "Intelligent-Tiering 5000 goes Advanced", tier: types.ParameterTierIntelligentTiering, length: 5000, wantTier: types.ParameterTierAdvanced},
		{name: "Intelligent-Tiering over Advanced", tier: types.ParameterTierIntelligentTiering, length: 8193, wantMsg: ssmAdvancedTooLong},
		{name: "no tier at the Standard limit", length: 4096, wantTier: types.ParameterTierStandard},
		{name: "no tier 5000", length: 5000, wantMsg: ssmStandardTooLong},
		{name: "no tier 5000 SecureString", length: 5000, typ: types.ParameterTypeSecureString, wantMsg: ssmStandardTooLong},
		{name: "no tier 5000, account default Intelligent-Tiering", defaultTier: types.ParameterTierIntelligentTiering, length: 5000, wantTier: types.ParameterTierAdvanced},
		{name: "no tier 5000, account default Advanced", defaultTier: types.ParameterTierAdvanced, length: 5000, wantTier: types.ParameterTierAdvanced},
		{name: "tags with overwrite", length: 10, overwrite: true, tags: true, wantMsg: "Invalid request: tags and overwrite can't be used together."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := &SSM{Client: api.Client, DefaultTier: tt.defaultTier}
			name := "/spotrunner-world/" + Name(t, "p")
			typ := tt.typ
			if typ == "" {
				typ = types.ParameterTypeString
			}
			value := strings.Repeat("v", tt.length)
			in := &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value), Type: typ, Tier: tt.tier, Overwrite: aws.Bool(tt.overwrite)}
			if tt.tags {
				in.Tags = []types.Tag{{Key: aws.String("spotrunner:managed"), Value: aws.String("true")}}
			}
			sent := *in
			out, err := s.PutParameter(ctx, in)
			if in.Tier != sent.Tier {
				t.Errorf("PutParameter changed the caller's Tier from %q to %q", sent.Tier, in.Tier)
			}

			if tt.wantMsg != "" {
				checkValidationException(t, err, tt.wantMsg)
				_, gerr := s.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
				var nf *types.ParameterNotFound
				if !errors.As(gerr, &nf) {
					t.Errorf("GetParameter after the refusal = %v, want ParameterNotFound", gerr)
				}
				return
			}
			if err != nil {
				t.Fatalf("PutParameter: %v", err)
			}
			if out.Tier != tt.wantTier {
				t.Errorf("PutParameter answered tier %q, want %q", out.Tier, tt.wantTier)
			}
			got, err := s.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
			if err != nil {
				t.Fatalf("GetParameter: %v", err)
			}
			if v := aws.ToString(got.Parameter.Value); v != value {
				t.Errorf("GetParameter read %d characters back, want the %d put", len(v), len(value))
			}
		})
	}
}

// checkValidationException checks that err is what the SDK returns for an HTTP 400
// ValidationException from SSM's PutParameter whose message starts with wantMsg.
func checkValidationException(t *testing.T, err error, wantMsg string) {
	t.Helper()
	if err == nil {
		t.Fatal("PutParameter succeeded, want a ValidationException")
	}
	var op *smithy.OperationError
	if !errors.As(err, &op) || op.Service() != "SSM" || op.Operation() != "PutParameter" {
		t.Errorf("error %v is not an SSM PutParameter *smithy.OperationError", err)
	}
	var resp *awshttp.ResponseError
	if !errors.As(err, &resp) || resp.HTTPStatusCode() != http.StatusBadRequest || resp.ServiceRequestID() == "" {
		t.Errorf("error %v is not an HTTP 400 *awshttp.ResponseError with a request id", err)
	}
	var ve *types.ValidationException
	if !errors.As(err, &ve) {
		t.Errorf("error %v does not wrap a *types.ValidationException", err)
	}
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "ValidationException" || api.ErrorFault() != smithy.FaultClient ||
		!strings.HasPrefix(api.ErrorMessage(), wantMsg) {
		t.Errorf("error %v: want API error ValidationException (client fault) with message %q", err, wantMsg)
	}
}
