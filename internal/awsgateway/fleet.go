package awsgateway

import (
	"errors"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	"github.com/rs/zerolog"
)

// createFleet answers EC2 CreateFleet through ec2world: the form decoded, the call made as the
// unit tests make it, the answer (or error) encoded as EC2 writes it.
func (g *Gateway) createFleet(w http.ResponseWriter, req *request, log zerolog.Logger) {
	if err := g.checkRegion(req); err != nil {
		writeError(w, req, http.StatusBadRequest, "UnsupportedOperation", err.Error())
		return
	}
	in, err := decodeCreateFleet(req.form)
	if err != nil {
		code, message := "InvalidParameterValue", err.Error()
		var fe *formError
		if errors.As(err, &fe) {
			code, message = fe.code, fe.message
		}
		log.Warn().Str("code", code).Str("reason", message).Msg("awsgateway: CreateFleet refused")
		writeError(w, req, http.StatusBadRequest, code, message)
		return
	}
	out, err := g.ec2.CreateFleet(req.http.Context(), in)
	if err != nil {
		status, code, message := ec2Error(err)
		log.Info().Int("status", status).Str("code", code).Msg("awsgateway: CreateFleet failed")
		writeError(w, req, status, code, message)
		return
	}
	id := requestID()
	body, err := encodeCreateFleet(out, id)
	if err != nil {
		log.Error().Err(err).Msg("awsgateway: CreateFleet answer")
		writeError(w, req, http.StatusInternalServerError, "InternalError", "awsgateway: "+err.Error())
		return
	}
	log.Info().Str("fleetId", aws.ToString(out.FleetId)).Int("instances", len(out.Instances)).Int("errors", len(out.Errors)).
		Msg("awsgateway: CreateFleet")
	writeBody(w, http.StatusOK, "text/xml;charset=UTF-8", id, "", body)
}

// ec2Error is the HTTP status, code and message EC2 answers err with: moto's own status when it
// answered; for an error ec2world made, 503 for throttling (as EC2 answers RequestLimitExceeded),
// 500 for a server fault, else 400; and 500 InternalError when moto could not be asked.
func ec2Error(err error) (int, string, string) {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return http.StatusInternalServerError, "InternalError", "awsgateway: " + err.Error()
	}
	var resp *awshttp.ResponseError
	switch {
	case errors.As(err, &resp):
		return resp.HTTPStatusCode(), api.ErrorCode(), api.ErrorMessage()
	case api.ErrorCode() == "RequestLimitExceeded":
		return http.StatusServiceUnavailable, api.ErrorCode(), api.ErrorMessage()
	case api.ErrorFault() == smithy.FaultServer:
		return http.StatusInternalServerError, api.ErrorCode(), api.ErrorMessage()
	}
	return http.StatusBadRequest, api.ErrorCode(), api.ErrorMessage()
}
