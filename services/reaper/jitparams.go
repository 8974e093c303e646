package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/state"
)

// jitParameters deletes the JIT configs of this deployment still waiting for an instance that is
// gone (terminated, shutting down, or unknown to EC2): the instance will never read it, and an
// Advanced parameter costs money while it exists. A config whose instance lives stays: its
// bootstrap reads and deletes it.
func (rp *Reaper) jitParameters(ctx context.Context, r *pass) error {
	const step = "jitParameters"
	ids, err := rp.params.JITInstances(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if r.late() {
			break
		}
		// The provisioner records the runner before it registers it, so a config has a record
		// unless it expired; its launch time tells a new instance EC2 does not list yet.
		var launchedAt time.Time
		switch run, err := rp.jobs.Runner(ctx, id); {
		case err == nil:
			launchedAt = run.LaunchedAt
		case !errors.Is(err, state.ErrNotFound):
			errs = append(errs, err)
			continue
		}
		gone, why, err := rp.instanceGone(ctx, id, launchedAt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !gone {
			continue
		}
		errs = append(errs, r.act(ctx, step, "delete jit config", id+" (instance "+why+")", func() error {
			return rp.params.DeleteJIT(ctx, id)
		}))
	}
	return errors.Join(errs...)
}

// SSM is the part of the SSM client SSMParams uses.
type SSM interface {
	DescribeParameters(ctx context.Context, in *ssm.DescribeParametersInput, optFns ...func(*ssm.Options)) (*ssm.DescribeParametersOutput, error)
	DeleteParameter(ctx context.Context, in *ssm.DeleteParameterInput, optFns ...func(*ssm.Options)) (*ssm.DeleteParameterOutput, error)
}

// SSMParams lists and deletes the JIT configs of one deployment in SSM Parameter Store. Safe for
// concurrent use.
type SSMParams struct {
	api SSM
	// deployment is required: only parameters tagged spotrunner:deployment with it are listed.
	deployment string
}

// JITInstances returns the instance ids whose configs wait under /spotrunner/<deployment>/jit/
// (fleet.JITParameterPrefix), tagged ours
// (spotrunner:managed=true) and this deployment's, all pages. Parameters are listed, never read:
// their values are secrets the reaper has no use for.
func (p SSMParams) JITInstances(ctx context.Context) ([]string, error) {
	if p.deployment == "" {
		return nil, errors.New("list jit configs: no deployment to look for")
	}
	jitPrefix := fleet.JITParameterPrefix(p.deployment)
	in := &ssm.DescribeParametersInput{
		ParameterFilters: []types.ParameterStringFilter{
			{Key: aws.String("Path"), Option: aws.String("OneLevel"), Values: []string{strings.TrimSuffix(jitPrefix, "/")}},
			{Key: aws.String("tag:" + fleet.ManagedTag), Values: []string{"true"}},
			{Key: aws.String("tag:" + fleet.DeploymentTag), Values: []string{p.deployment}},
		},
		MaxResults: aws.Int32(50),
	}
	var ids []string
	for pages := ssm.NewDescribeParametersPaginator(p.api, in); pages.HasMorePages(); {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list jit configs of deployment %q: %w", p.deployment, err)
		}
		for _, m := range page.Parameters {
			if id, ok := strings.CutPrefix(aws.ToString(m.Name), jitPrefix); ok && id != "" && !strings.Contains(id, "/") {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

// DeleteJIT deletes instanceID's config; one already gone (read by its instance, deleted by a
// concurrent run) is not an error.
func (p SSMParams) DeleteJIT(ctx context.Context, instanceID string) error {
	_, err := p.api.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(fleet.JITParameterPrefix(p.deployment) + instanceID)})
	var nf *types.ParameterNotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("delete jit config of %s: %w", instanceID, err)
	}
	return nil
}
