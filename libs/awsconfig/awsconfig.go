// Package awsconfig builds the one aws.Config every client of a service is made from.
//
// It honours an endpoint override (AWS_ENDPOINT_URL, read into the service's typed config in main),
// so the same binaries run unchanged against the local world (moto on loopback) and AWS. Retries
// are the SDK's standard mode with a bounded number of attempts: the services classify what is
// left after those retries themselves (transient, operator-fixable, user error).
package awsconfig

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
)

// ErrNoRegion: neither the options nor the SDK's chain gave a region.
var ErrNoRegion = errors.New("no region")

// Options are the knobs a service passes in; the zero value means "as Lambda sets it up".
type Options struct {
	// Region is optional; default: the SDK's chain (AWS_REGION, set by Lambda).
	Region string
	// EndpointURL is optional; when set, every client sends its requests there (the local world).
	EndpointURL string
	// MaxAttempts is optional; default 3. Handlers must answer fast, so this stays small.
	MaxAttempts int
	// HTTPTimeout bounds one HTTP round trip; optional, default 10 s.
	HTTPTimeout time.Duration
	// Profile is optional: a shared-config profile (the operator CLI's --profile); default: the
	// SDK's chain (AWS_PROFILE, then default).
	Profile string
}

// Load returns the shared config. Every AWS client of the service is built from it.
func Load(ctx context.Context, o Options) (aws.Config, error) {
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	if o.HTTPTimeout == 0 {
		o.HTTPTimeout = 10 * time.Second
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) { so.MaxAttempts = o.MaxAttempts })
		}),
		// Buildable, so that AWS_CA_BUNDLE keeps working behind a TLS-inspecting proxy.
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(o.HTTPTimeout)),
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.EndpointURL != "" {
		opts = append(opts, config.WithBaseEndpoint(o.EndpointURL))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, fmt.Errorf("load aws config: %w (set AWS_REGION)", ErrNoRegion)
	}
	return cfg, nil
}
