package awsgateway

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// AWS's refusals of a value too long for its tier, written out here rather than taken from the
// package, so that a change of the gateway's text fails the test.
const (
	wantStandardTooLong = "Standard tier parameters support a maximum parameter value of 4096 characters. " +
		"To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier. " +
		"For more information, see https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html"
	wantAdvancedTooLong = "Advanced tier parameters support a maximum parameter value of 8192 characters."
)

// ssmOutcome is what one PutParameter came to: the tier moto stored the parameter in, or the
// refusal's code and message (then nothing is stored).
type ssmOutcome struct {
	Tier    string
	Status  int
	Code    string
	Message string
}

// putOutcome puts value under name with tier through client and reads back what happened.
func putOutcome(t *testing.T, client interface {
	PutParameter(context.Context, *ssm.PutParameterInput, ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
}, moto *ssm.Client, name, value string, tier ssmtypes.ParameterTier) ssmOutcome {
	t.Helper()
	ctx := context.Background()
	_, err := client.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value), Type: ssmtypes.ParameterTypeSecureString, Tier: tier})
	if err != nil {
		var validation *ssmtypes.ValidationException
		if !errors.As(err, &validation) {
			t.Fatalf("PutParameter %s: %v, want success or a ValidationException", name, err)
		}
		checkAPIError(t, err, http.StatusBadRequest, "ValidationException", "")
		if _, err := moto.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)}); err == nil {
			t.Errorf("refused parameter %s is in moto", name)
		}
		return ssmOutcome{Status: http.StatusBadRequest, Code: validation.ErrorCode(), Message: validation.ErrorMessage()}
	}
	out, err := moto.DescribeParameters(ctx, &ssm.DescribeParametersInput{
		ParameterFilters: []ssmtypes.ParameterStringFilter{{Key: aws.String("Name"), Option: aws.String("Equals"), Values: []string{name}}},
	})
	if err != nil || len(out.Parameters) != 1 {
		t.Fatalf("describe %s in moto: %v (%d found)", name, err, len(out.Parameters))
	}
	return ssmOutcome{Tier: string(out.Parameters[0].Tier)}
}

// TestWorldSSMTiers (local world): fixtures are values of 1, 4096, 4097, 8192 and 8193
// characters (the 4096 one in two-byte characters: limits count characters, not bytes), put
// with each tier or none, by an account whose default tier is Standard and by one whose default
// is Advanced. Through the gateway, each must come out as AWS answers it: stored in the tier AWS
// would choose, or refused with HTTP 400 ValidationException and AWS's text, nothing stored. Each
// must also come out as internal/world.SSM answers the same request straight to moto: the two
// emulations stay in step.
func TestWorldSSMTiers(t *testing.T) {
	t.Parallel()
	world.Endpoint(t) // before the cases: the whole test fails (or skips) without the world
	std, adv, intel := ssmtypes.ParameterTierStandard, ssmtypes.ParameterTierAdvanced, ssmtypes.ParameterTierIntelligentTiering
	refusedStd := ssmOutcome{Status: 400, Code: "ValidationException", Message: wantStandardTooLong}
	refusedAdv := ssmOutcome{Status: 400, Code: "ValidationException", Message: wantAdvancedTooLong}
	tests := []struct {
		name        string
		defaultTier ssmtypes.ParameterTier
		tier        ssmtypes.ParameterTier
		value       string
		want        ssmOutcome
	}{
		{name: "no tier, 4096 two-byte characters", value: strings.Repeat("é", 4096), want: ssmOutcome{Tier: "Standard"}},
		{name: "no tier, 4097", value: strings.Repeat("x", 4097), want: refusedStd},
		{name: "Standard, 4097", tier: std, value: strings.Repeat("x", 4097), want: refusedStd},
		{name: "Advanced, 8192", tier: adv, value: strings.Repeat("x", 8192), want: ssmOutcome{Tier: "Advanced"}},
		{name: "Advanced, 8193", tier: adv, value: strings.Repeat("x", 8193), want: refusedAdv},
		{name: "Intelligent-Tiering, 1", tier: intel, value: "x", want: ssmOutcome{Tier: "Standard"}},
		{name: "Intelligent-Tiering, 4097", tier: intel, value: strings.Repeat("x", 4097), want: ssmOutcome{Tier: "Advanced"}},
		{name: "Intelligent-Tiering, 8193", tier: intel, value: strings.Repeat("x", 8193), want: refusedAdv},
		{name: "account default Advanced, no tier, 4097", defaultTier: adv, value: strings.Repeat("x", 4097), want: ssmOutcome{Tier: "Advanced"}},
		{name: "account default Advanced, Standard, 4097", defaultTier: adv, tier: std, value: strings.Repeat("x", 4097), want: refusedStd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, cfg := startWorld(t, Options{SSMDefaultTier: string(tt.defaultTier)})
			moto := ssm.NewFromConfig(world.AWS(t))
			name := "/spotrunner/test/" + world.Name(t, "p")

			got := putOutcome(t, ssm.NewFromConfig(cfg), moto, name, tt.value, tt.tier)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("through the gateway (-want +got):\n%s", diff)
			}
			strict := world.NewSSM(world.AWS(t))
			strict.DefaultTier = tt.defaultTier
			if diff := cmp.Diff(tt.want, putOutcome(t, strict, moto, name+"-world", tt.value, tt.tier)); diff != "" {
				t.Errorf("internal/world.SSM (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]Call{{"ssm", "PutParameter"}}, slices.Compact(g.Calls())); diff != "" {
				t.Errorf("Calls(), SDK retries folded (-want +got):\n%s", diff)
			}
		})
	}
}
