// Command reaper is the Lambda run every five minutes by EventBridge: cloud, GitHub and the state
// table agree again. It touches only what carries spotrunner:managed and this deployment's name,
// and logs what it skipped and why. Its steps, in this order, each its own function:
//  1. stuckLaunches: runners idle past STUCK_AFTER (10 min) with no job taken: deregistered (never
//     one GitHub says is busy), terminated, slot freed; a job still queued on GitHub is relaunched
//     through the provisioner's path (libs/relaunch);
//  2. overTime: instances past their preset's timeout plus GRACE: terminated (the bootstrap's own
//     limit failed), runner done, slot freed;
//  3. orphans: instances tagged ours with no runner record, or whose record ended: terminated once
//     older than ORPHAN_AFTER (a launch being recorded is never one);
//  4. registrations: runners of ours on GitHub whose instance is gone: deregistered, allowing for
//     GitHub's lag; a runner that is busy is never deleted;
//  5. jitParameters: JIT configs waiting for an instance that is gone: deleted;
//  6. records: runner items holding a slot whose instance is gone, or done, give it back; jobs
//     launched whose runner is busy with another job, done or dead are relaunched; slot counters
//     are recomputed and drift repaired (logged);
//  7. missedWebhooks: failed workflow_job deliveries of the App in the last hour are redelivered,
//     once each;
//  8. expiry: finished items carry their TTL from the write that finishes them (checked by
//     TestExpiry; finding one without would need a Scan), so the step only says so.
//
// Work is bounded: each step pages through, and the run stops starting work MARGIN before the
// function's deadline; the next run continues. Two runs at once are safe (every write is
// conditional). DRY_RUN logs every change instead of making it. One summary line per run.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/service"
	"github.com/spotrunner/spotrunner/libs/state"
)

// Config is the reaper's environment.
type Config struct {
	// TableName is required: the state table.
	TableName string `env:"TABLE_NAME, required"`
	// QueueURL is required: the FIFO job queue (relaunches).
	QueueURL string `env:"QUEUE_URL, required"`
	// Deployment is required: this stack's name; only instances and parameters tagged with it are
	// touched.
	Deployment string `env:"DEPLOYMENT, required"`
	// StuckAfter, Grace, OrphanAfter, RegistrationLag are optional; defaults 10m, 10m, 10m, 5m.
	StuckAfter      time.Duration `env:"STUCK_AFTER, default=10m"`
	Grace           time.Duration `env:"GRACE, default=10m"`
	OrphanAfter     time.Duration `env:"ORPHAN_AFTER, default=10m"`
	RegistrationLag time.Duration `env:"REGISTRATION_LAG, default=5m"`
	// Margin is optional, default 20s: no work is started this close to the deadline.
	Margin time.Duration `env:"MARGIN, default=20s"`
	// DryRun is optional, default false: log every change instead of making it.
	DryRun bool `env:"DRY_RUN, default=false"`
	service.GitHub
	service.Runtime
}

// Validate checks what tags cannot.
func (c *Config) Validate() error {
	if err := c.GitHub.Check(); err != nil {
		return err
	}
	if c.StuckAfter < 5*time.Minute {
		return fmt.Errorf("STUCK_AFTER %s: want at least 5m (a boot and a registration take minutes)", c.StuckAfter)
	}
	return nil
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "reaper:", err)
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
	rp := &Reaper{
		jobs:       state.New(dynamodb.NewFromConfig(aws), cfg.TableName),
		fleet:      fleet.New(ec2.NewFromConfig(aws)),
		github:     app,
		deliveries: app,
		params:     SSMParams{api: ssm.NewFromConfig(aws), deployment: cfg.Deployment},
		requeue:    queue.NewPublisher(sqs.NewFromConfig(aws), cfg.QueueURL),
		cfg: Settings{Deployment: cfg.Deployment, StuckAfter: cfg.StuckAfter, Grace: cfg.Grace, OrphanAfter: cfg.OrphanAfter,
			RegistrationLag: cfg.RegistrationLag, Margin: cfg.Margin, DryRun: cfg.DryRun},
		now: time.Now,
	}
	lambda.Start(func(ctx context.Context) error { return rp.Run(logging.Attach(ctx, log)) })
	return nil
}
