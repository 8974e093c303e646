package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/spotrunner/spotrunner/libs/logging"
)

// SSM is the part of the SSM client the watcher uses.
type SSM interface {
	PutParameter(ctx context.Context, in *ssm.PutParameterInput, optFns ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
	DeleteParameter(ctx context.Context, in *ssm.DeleteParameterInput, optFns ...func(*ssm.Options)) (*ssm.DeleteParameterOutput, error)
}

// amiStateChange is the detail of an "EC2 AMI State Change" event.
type amiStateChange struct {
	ImageID string `json:"ImageId"`
	State   string `json:"State"`
}

// amiGone handles an AMI that was deregistered or disabled: every preset whose record names it
// forgets it (the previous AMI serves, or jobs wait for the next build), so it is never handed to
// a launch again. AMIs no record names are not ours, or no longer in use: ignored.
func (h *Handler) amiGone(ctx context.Context, ch amiStateChange) (string, error) {
	if ch.State != "deregistered" && ch.State != "disabled" {
		return "ignored: AMI state " + ch.State, nil
	}
	records, err := h.jobs.PresetImages(ctx)
	if err != nil {
		return "", err
	}
	var dropped []string
	var errs []error
	for _, rec := range records {
		if !slices.Contains(h.presetNames(), rec.Name) || (rec.AMIID != ch.ImageID && rec.PreviousAMIID != ch.ImageID) {
			continue
		}
		after, err := h.jobs.DropAMI(ctx, rec.Name, ch.ImageID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		logging.From(ctx).Warn().Str("preset", rec.Name).Str("goneAmiId", ch.ImageID).Str("amiId", after.UsableAMI()).
			Str("presetStatus", after.Status).Msg("preset AMI gone")
		errs = append(errs, h.publishAMI(ctx, rec.Name, after.UsableAMI()))
		dropped = append(dropped, rec.Name)
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	if len(dropped) == 0 {
		return "ignored: AMI " + ch.ImageID + " is not in use by a preset", nil
	}
	return "AMI " + ch.ImageID + " dropped from " + strings.Join(dropped, ", "), nil
}

// publishAMI writes the preset's AMI id where operators and tools read it,
// <prefix><preset>/ami (deleted when the preset has none); jobs take theirs from the state table.
func (h *Handler) publishAMI(ctx context.Context, preset, ami string) error {
	name := h.prefix + preset + "/ami"
	if ami == "" {
		_, err := h.ssm.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(name)})
		var nf *ssmtypes.ParameterNotFound
		if err != nil && !errors.As(err, &nf) {
			return fmt.Errorf("delete %s: %w", name, err)
		}
		return nil
	}
	_, err := h.ssm.PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(ami), Type: ssmtypes.ParameterTypeString,
		Tier: ssmtypes.ParameterTierStandard, Overwrite: aws.Bool(true),
		Description: aws.String("AMI of Spot Runner preset " + preset + ", kept by amiwatcher"),
	})
	if err != nil {
		return fmt.Errorf("publish AMI of preset %s in %s: %w", preset, name, err)
	}
	return nil
}
