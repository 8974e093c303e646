// Command provisioner is the Lambda fed by the FIFO job queue (ReportBatchItemFailures). For each
// job event, in order of its group:
//  1. queued: records the job, claims it with a conditional write (a duplicate or a job already
//     launched is acknowledged), loads its preset (SSM, cached) and checks the labels against it
//     (a user error is recorded as rejected), finds a usable AMI (or waits with backoff, up to a
//     bound), checks the GitHub App can act for the owner, launches one instance with an
//     idempotent EC2 Fleet request within the optional caps (resuming finds the instance of an
//     earlier attempt instead), registers its JIT runner with the job's labels, delivers the
//     config through SSM for that instance only, and marks the job launched;
//  2. in_progress: marks the job running and its runner busy; a runner launched for another job,
//     or a job that had its own runner, triggers the per-label-set correction;
//  3. completed: marks the job completed (or cancelled when it never started), its runner done,
//     counts the hour's activity, and corrects the label set after a cancellation.
//
// Failures are classified in one place (errors.go): transient ones retry with jittered
// exponential backoff, operator-fixable ones reach the DLQ after maxReceiveCount.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/presets"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/service"
	"github.com/spotrunner/spotrunner/libs/state"
)

// Config is the provisioner's environment.
type Config struct {
	// QueueURL is required: the FIFO job queue (backoff and relaunches).
	QueueURL string `env:"QUEUE_URL, required"`
	// TableName is required: the state table.
	TableName string `env:"TABLE_NAME, required"`
	// Presets is required: the configured preset names (comma-separated).
	Presets []string `env:"PRESETS, required"`
	// Deployment is required: this stack's name, tagged spotrunner:deployment on every instance and
	// JIT parameter, so the reaper of one stack never touches another's.
	Deployment string `env:"DEPLOYMENT, required"`
	// SubnetIDs is required: the subnets runners launch in (comma-separated).
	SubnetIDs []string `env:"SUBNET_IDS, required"`
	// MaxRunners is optional, default 0 (no cap): concurrent runners in total.
	MaxRunners int `env:"MAX_RUNNERS, default=0"`
	// RunnerGroupID is optional, default 1 (GitHub's Default group).
	RunnerGroupID int64 `env:"RUNNER_GROUP_ID, default=1"`
	// NoAMIWait is optional, default 90m: how long a job waits for its preset's first AMI (a first
	// build with its tests takes 30-60 min; docs/images.md).
	NoAMIWait time.Duration `env:"NO_AMI_WAIT, default=90m"`
	// Lease is optional, default 2m: how long a claim holds a job (longer than the function timeout).
	Lease time.Duration `env:"CLAIM_LEASE, default=2m"`
	// ConfigDeadline is optional, default 8m: an instance whose runner is still not registered this
	// long after launch is replaced. It must stay below the bootstrap's wait for its config
	// (SPOTRUNNER_JIT_WAIT_SECONDS, 600 s), which outlasts the queue's visibility timeout (6 min).
	ConfigDeadline time.Duration `env:"CONFIG_DEADLINE, default=8m"`
	// RecordBudget is optional, default 20s: the time one record may take at worst (a launch, a
	// registration and their retries inside the SDKs); a batch stops starting records when less is
	// left before the function's deadline.
	RecordBudget time.Duration `env:"RECORD_BUDGET, default=20s"`
	// BackoffBase and BackoffMax bound the transient retry delay; optional, default 2s and 5m.
	BackoffBase time.Duration `env:"BACKOFF_BASE, default=2s"`
	BackoffMax  time.Duration `env:"BACKOFF_MAX, default=5m"`
	// OperatorRetry is the pause between tries of an operator-fixable failure; optional, default 30s.
	OperatorRetry time.Duration `env:"OPERATOR_RETRY, default=30s"`
	// PresetCacheTTL is optional, default 1m.
	PresetCacheTTL time.Duration `env:"PRESET_CACHE_TTL, default=1m"`
	// AccountID and Partition are required for instance ARNs (the JIT parameter's tag).
	AccountID string `env:"ACCOUNT_ID, required"`
	Partition string `env:"AWS_PARTITION, default=aws"`
	// Region is set by Lambda.
	Region string `env:"AWS_REGION, required"`
	service.GitHub
	service.Runtime
}

// Validate checks what tags cannot.
func (c *Config) Validate() error {
	if err := c.GitHub.Check(); err != nil {
		return err
	}
	if c.Lease < time.Minute {
		return fmt.Errorf("CLAIM_LEASE %s: want at least 1m (longer than the function timeout)", c.Lease)
	}
	if c.ConfigDeadline < 2*time.Minute || c.ConfigDeadline > 9*time.Minute {
		return fmt.Errorf("CONFIG_DEADLINE %s: want 2m to 9m (below the instance's 10 min wait for its config)", c.ConfigDeadline)
	}
	if c.MaxRunners < 0 {
		return fmt.Errorf("MAX_RUNNERS %d: want 0 (no cap) or more", c.MaxRunners)
	}
	return nil
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "provisioner:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg Config
	log, aws, err := service.Start(ctx, &cfg)
	if err != nil {
		return err
	}
	app, _, err := cfg.GitHub.App(aws, 5*time.Minute, 0)
	if err != nil {
		return err
	}
	sqsClient := sqs.NewFromConfig(aws)
	h := &Handler{
		jobs:       state.New(dynamodb.NewFromConfig(aws), cfg.TableName),
		presets:    presets.New(ssm.NewFromConfig(aws), presets.ParameterPrefix(cfg.Deployment), cfg.Presets, cfg.PresetCacheTTL),
		fleet:      fleet.New(ec2.NewFromConfig(aws)),
		github:     app,
		jit:        JITStore{api: ssm.NewFromConfig(aws), Deployment: cfg.Deployment},
		requeue:    queue.NewPublisher(sqsClient, cfg.QueueURL),
		visibility: sqsClient,
		queueURL:   cfg.QueueURL,
		backoff:    Backoff{Base: cfg.BackoffBase, Max: cfg.BackoffMax, Operator: cfg.OperatorRetry},
		now:        time.Now,
		cfg: Settings{
			Deployment: cfg.Deployment, SubnetIDs: trimAll(cfg.SubnetIDs), MaxRunners: cfg.MaxRunners, RunnerGroupID: cfg.RunnerGroupID,
			NoAMIWait: cfg.NoAMIWait, Lease: cfg.Lease, ConfigDeadline: cfg.ConfigDeadline, RecordBudget: cfg.RecordBudget, Partition: cfg.Partition, Region: cfg.Region, AccountID: cfg.AccountID,
		},
	}
	lambda.Start(func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		return h.Handle(logging.Attach(ctx, log), ev)
	})
	return nil
}

func trimAll(items []string) []string {
	var out []string
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}
