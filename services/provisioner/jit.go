package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/spotrunner/spotrunner/libs/fleet"
)

// JIT configs wait for their instance at fleet.JITParameterPrefix(deployment) + instance id. The
// instance role may read and delete only the parameter whose spotrunner:instance-arn tag is its own
// ARN (docs/instance.md); the bootstrap deletes it right after reading, so it is read once.

// SSM is the part of the SSM client JIT delivery uses.
type SSM interface {
	PutParameter(ctx context.Context, in *ssm.PutParameterInput, optFns ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
	DeleteParameter(ctx context.Context, in *ssm.DeleteParameterInput, optFns ...func(*ssm.Options)) (*ssm.DeleteParameterOutput, error)
}

// JITStore delivers JIT configs to instances through SSM Parameter Store.
type JITStore struct {
	api SSM
	// KMSKeyID is optional; default: the account's aws/ssm key.
	KMSKeyID string
	// Deployment is this stack's name, part of every parameter's name and tagged on it.
	Deployment string
}

// name is instanceID's parameter.
func (s JITStore) name(instanceID string) string {
	return fleet.JITParameterPrefix(s.Deployment) + instanceID
}

// Put stores config for instanceID as a SecureString tagged with the instance's ARN. Without
// replace an existing parameter stays (an earlier attempt's delivery of the same registration);
// with replace it is overwritten (the registration it belonged to was deleted).
func (s JITStore) Put(ctx context.Context, instanceID, instanceARN, config string, replace bool) error {
	if replace {
		if err := s.Delete(ctx, instanceID); err != nil {
			return err
		}
	}
	tier, err := tierFor(config)
	if err != nil {
		return fmt.Errorf("deliver jit config for %s: %w", instanceID, err)
	}
	in := &ssm.PutParameterInput{
		Name:      aws.String(s.name(instanceID)),
		Value:     aws.String(config),
		Type:      types.ParameterTypeSecureString,
		Tier:      tier,
		Overwrite: aws.Bool(false), // SSM refuses Tags together with Overwrite
		Tags: []types.Tag{
			{Key: aws.String("spotrunner:managed"), Value: aws.String("true")},
			{Key: aws.String("spotrunner:deployment"), Value: aws.String(s.Deployment)},
			{Key: aws.String("spotrunner:instance-arn"), Value: aws.String(instanceARN)},
		},
	}
	if s.KMSKeyID != "" {
		in.KeyId = aws.String(s.KMSKeyID)
	}
	_, err = s.api.PutParameter(ctx, in)
	var exists *types.ParameterAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		// The SDK error does not echo the value; the instance id is enough to find it.
		return fmt.Errorf("deliver jit config for %s: %w", instanceID, err)
	}
	return nil
}

// SSM's value limits per tier. A real JIT config carries the runner's RSA key parameters and is
// 4.5–6 KB: over the Standard tier's limit, within the Advanced tier's.
const (
	standardMax = 4096
	advancedMax = 8192
)

// tierFor is the cheapest tier that holds value. Advanced parameters cost money while they exist
// (docs/provisioning.md); a JIT parameter lives from registration until its instance reads it.
func tierFor(value string) (types.ParameterTier, error) {
	switch n := len(value); {
	case n <= standardMax:
		return types.ParameterTierStandard, nil
	case n <= advancedMax:
		return types.ParameterTierAdvanced, nil
	default:
		return "", fmt.Errorf("jit config of %d bytes exceeds SSM's %d-byte limit", n, advancedMax)
	}
}

// Exists reports whether instanceID's config is waiting (not yet read by the instance).
func (s JITStore) Exists(ctx context.Context, instanceID string) (bool, error) {
	_, err := s.api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(s.name(instanceID))})
	var nf *types.ParameterNotFound
	switch {
	case errors.As(err, &nf):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("look up jit config of %s: %w", instanceID, err)
	}
	return true, nil
}

// Delete removes instanceID's config if it is still there.
func (s JITStore) Delete(ctx context.Context, instanceID string) error {
	_, err := s.api.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(s.name(instanceID))})
	var nf *types.ParameterNotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("delete jit config of %s: %w", instanceID, err)
	}
	return nil
}
