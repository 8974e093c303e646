// Package service is the start every Spot Runner Lambda shares, in order: its typed config from
// the environment (validated), the JSON logger at the configured level, and the one aws.Config
// its clients are built from (honouring AWS_ENDPOINT_URL for the local world).
package service

import (
	"context"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/rs/zerolog"

	"github.com/spotrunner/spotrunner/libs/awsconfig"
	"github.com/spotrunner/spotrunner/libs/config"
	"github.com/spotrunner/spotrunner/libs/logging"
)

// Runtime is the part of every service's config this package reads; embed it.
type Runtime struct {
	// LogLevel is optional, default info.
	LogLevel string `env:"LOG_LEVEL, default=info"`
	// AWSEndpointURL is optional: send every AWS call there (the local world).
	AWSEndpointURL string `env:"AWS_ENDPOINT_URL"`
}

// Runtimer is a config that embeds Runtime.
type Runtimer interface{ runtime() Runtime }

func (r Runtime) runtime() Runtime { return r }

// Start loads cfg (a pointer to the service's config struct) and returns the logger (JSON to
// stdout) and the AWS config.
func Start(ctx context.Context, cfg Runtimer) (zerolog.Logger, aws.Config, error) {
	if err := config.Load(ctx, cfg); err != nil {
		return zerolog.Nop(), aws.Config{}, err
	}
	rt := cfg.runtime()
	log, err := logging.New(os.Stdout, rt.LogLevel)
	if err != nil {
		return zerolog.Nop(), aws.Config{}, err
	}
	awsCfg, err := awsconfig.Load(ctx, awsconfig.Options{EndpointURL: rt.AWSEndpointURL})
	if err != nil {
		return zerolog.Nop(), aws.Config{}, err
	}
	return log, awsCfg, nil
}
