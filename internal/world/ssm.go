package world

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Parameter Store's value limits per tier, in characters
// (https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html).
const (
	SSMStandardMax = 4096
	SSMAdvancedMax = 8192
)

// The messages AWS answers a too-long value with. The Standard one is AWS's, as quoted in
// github-aws-runners/terraform-aws-github-runner#3815 and #4790 and aws/aws-sdk-net#3157. No
// public report quotes the Advanced one; it is written in the Standard one's form.
const (
	ssmStandardTooLong = "Standard tier parameters support a maximum parameter value of 4096 characters. " +
		"To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier. " +
		"For more information, see https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html"
	ssmAdvancedTooLong = "Advanced tier parameters support a maximum parameter value of 8192 characters."
)

// SSM is an SSM client for moto that refuses what AWS refuses. moto stores a value of any length
// in any tier; AWS holds at most SSMStandardMax characters in a Standard parameter and
// SSMAdvancedMax in an Advanced one. PutParameter checks the value against its tier first:
//
//   - Tier Standard, or no Tier with the account's default tier Standard (a new account's):
//     over 4096 characters is refused;
//   - Tier Advanced: over 8192 is refused;
//   - Tier Intelligent-Tiering: Standard when the value fits, else Advanced (over 8192 refused);
//     moto is asked for the tier chosen, so that it reports the tier AWS would.
//
// A refusal is the SDK's error for AWS's answer: a *smithy.OperationError wrapping an HTTP 400
// *awshttp.ResponseError wrapping a *types.ValidationException, and moto is not called. Tags
// together with Overwrite, which AWS also refuses, moto already refuses with AWS's message. Not
// modelled: the tier of a parameter that already exists (AWS keeps an Advanced parameter
// Advanced and refuses to make it Standard), and policies, which also need Advanced.
type SSM struct {
	*ssm.Client
	// DefaultTier is the account's default parameter tier, used when a request names none.
	// Optional; default Standard, as in a new account.
	DefaultTier types.ParameterTier
}

// NewSSM returns the strict client for cfg (see AWS).
func NewSSM(cfg aws.Config) *SSM { return &SSM{Client: ssm.NewFromConfig(cfg)} }

// PutParameter checks the value's length against its tier, then stores it in moto.
func (s *SSM) PutParameter(ctx context.Context, in *ssm.PutParameterInput, optFns ...func(*ssm.Options)) (*ssm.PutParameterOutput, error) {
	tier, msg := s.tierFor(in)
	if msg != "" {
		return nil, putParameterRefused(msg)
	}
	if tier != in.Tier {
		req := *in
		req.Tier = tier
		in = &req
	}
	return s.Client.PutParameter(ctx, in, optFns...)
}

// tierFor returns the tier AWS would store in's value in, or the message it refuses it with.
func (s *SSM) tierFor(in *ssm.PutParameterInput) (types.ParameterTier, string) {
	n := utf8.RuneCountInString(aws.ToString(in.Value))
	tier := in.Tier
	if tier == "" {
		tier = s.DefaultTier
	}
	switch tier {
	case "", types.ParameterTierStandard:
		if n > SSMStandardMax {
			return "", ssmStandardTooLong
		}
		return in.Tier, ""
	case types.ParameterTierIntelligentTiering:
		if n <= SSMStandardMax {
			return types.ParameterTierStandard, ""
		}
		tier = types.ParameterTierAdvanced
	}
	if n > SSMAdvancedMax {
		return "", ssmAdvancedTooLong
	}
	return tier, ""
}

// putParameterRefused is the error the SDK returns when SSM answers PutParameter with an HTTP
// 400 ValidationException.
func putParameterRefused(msg string) error {
	requestID := rand.Text() // AWS's request ids are opaque; this one is unique
	return &smithy.OperationError{
		ServiceID:     ssm.ServiceID,
		OperationName: "PutParameter",
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{
					StatusCode: http.StatusBadRequest,
					Status:     fmt.Sprintf("%d %s", http.StatusBadRequest, http.StatusText(http.StatusBadRequest)),
					Header: http.Header{
						"Content-Type":     {"application/x-amz-json-1.1"},
						"X-Amzn-Requestid": {requestID},
						"X-Amzn-Errortype": {"ValidationException"},
					},
				}},
				Err: &types.ValidationException{Message: aws.String(msg)},
			},
			RequestID: requestID,
		},
	}
}
