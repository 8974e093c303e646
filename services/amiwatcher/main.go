// Command amiwatcher is the Lambda that keeps each preset's AMI record (state table) true. For each
// invocation, by what it is:
//  1. an EventBridge "EC2 Image Builder Image State Change" of an image from one of this stack's
//     pipelines (GetImage's source pipeline; others are ignored with the reason): a build under way
//     marks the preset building, AVAILABLE makes the image's AMI in this region the current one
//     (the current one becomes the previous one) and publishes it in SSM, FAILED / CANCELLED mark
//     the preset failed with the reason while its AMIs keep serving; build versions order the
//     events, so late or duplicate ones never move a preset backwards;
//  2. an EventBridge "EC2 AMI State Change" to deregistered or disabled: a preset naming that AMI
//     forgets it, so it is never handed to a launch (the previous AMI serves, or jobs wait);
//  3. a CloudFormation custom resource request (one per preset, at deploy): records the preset as
//     building and starts its pipeline's first execution on create, and on update to another
//     pipeline or recipe; answers CloudFormation always, before the function's deadline.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/imagebuilder"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/presets"
	"github.com/spotrunner/spotrunner/libs/service"
	"github.com/spotrunner/spotrunner/libs/state"
)

// Config is the watcher's environment.
type Config struct {
	// TableName is required: the state table.
	TableName string `env:"TABLE_NAME, required"`
	// Pipelines is optional: this stack's presets that build their image and their pipelines,
	// comma-separated preset=pipeline ARN pairs; empty when every preset brings its own AMI.
	Pipelines []string `env:"PIPELINES"`
	// Deployment is required: this stack's name; <preset>/ami is published under
	// presets.ParameterPrefix(Deployment).
	Deployment string `env:"DEPLOYMENT, required"`
	// AnswerMargin is optional, default 5s: a custom resource is answered this long before the
	// function's deadline at the latest.
	AnswerMargin time.Duration `env:"ANSWER_MARGIN, default=5s"`
	// Region is set by Lambda.
	Region string `env:"AWS_REGION, required"`
	service.Runtime
}

// Validate checks what tags cannot.
func (c *Config) Validate() error {
	_, err := pipelines(c.Pipelines)
	return err
}

// pipelines reads preset=arn pairs into pipeline ARN -> preset.
func pipelines(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range pairs {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		preset, arn, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || preset == "" || !strings.HasPrefix(arn, "arn:") || !strings.Contains(arn, ":image-pipeline/") {
			return nil, fmt.Errorf("PIPELINES: %q is not preset=<image pipeline ARN>", pair)
		}
		out[arn] = preset
	}
	return out, nil
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "amiwatcher:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg Config
	log, aws, err := service.Start(ctx, &cfg)
	if err != nil {
		return err
	}
	pl, err := pipelines(cfg.Pipelines)
	if err != nil {
		return err
	}
	h := &Handler{
		jobs:      state.New(dynamodb.NewFromConfig(aws), cfg.TableName),
		images:    imagebuilder.NewFromConfig(aws),
		ssm:       ssm.NewFromConfig(aws),
		pipelines: pl,
		prefix:    presets.ParameterPrefix(cfg.Deployment),
		region:    cfg.Region,
		client:    &http.Client{Timeout: 10 * time.Second},
		margin:    cfg.AnswerMargin,
	}
	lambda.Start(func(ctx context.Context, raw json.RawMessage) error {
		return h.Handle(logging.Attach(ctx, log), raw)
	})
	return nil
}
