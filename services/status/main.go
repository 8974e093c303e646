// Command status is the Lambda behind GET /status. For each request it, in order:
//  1. answers only GET, and only to the optional source IP allow-list (STATUS_ALLOWED_CIDRS);
//  2. reads at once, with a fixed number of reads whatever the number of jobs: every preset's
//     image record, the waiting jobs and idle and busy runners (COUNT queries on the phase index),
//     the hourly activity of the last day, whether the private key is in place and parses (never
//     returned or logged), and GitHub's answer to GET /app as the App (time-boxed, cached briefly);
//  3. answers the status document (ready | building | degraded, the message, plain warnings),
//     with Cache-Control: no-store and no secret, repository, owner or instance id in it.
package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/service"
	"github.com/spotrunner/spotrunner/libs/state"
)

// Config is the status function's environment.
type Config struct {
	// TableName is required: the state table.
	TableName string `env:"TABLE_NAME, required"`
	// Presets is required: the configured preset names (comma-separated), in display order.
	Presets []string `env:"PRESETS, required"`
	// AllowedCIDRs is optional (comma-separated): only these source addresses may read the status.
	AllowedCIDRs []string `env:"STATUS_ALLOWED_CIDRS"`
	// GitHubTimeout is optional, default 800ms: how long the GitHub call may take.
	GitHubTimeout time.Duration `env:"GITHUB_CHECK_TIMEOUT, default=800ms"`
	service.GitHub
	service.Runtime
}

// Validate checks what tags cannot.
func (c *Config) Validate() error {
	if err := c.GitHub.Check(); err != nil {
		return err
	}
	if _, err := prefixes(c.AllowedCIDRs); err != nil {
		return err
	}
	if c.GitHubTimeout <= 0 || c.GitHubTimeout > 5*time.Second {
		return fmt.Errorf("GITHUB_CHECK_TIMEOUT %s: want more than 0 and at most 5s", c.GitHubTimeout)
	}
	return nil
}

func prefixes(cidrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, c := range cidrs {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("STATUS_ALLOWED_CIDRS: %q is not a CIDR block", c)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "status:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg Config
	log, aws, err := service.Start(ctx, &cfg)
	if err != nil {
		return err
	}
	app, keys, err := cfg.GitHub.App(aws, time.Minute, cfg.GitHubTimeout)
	if err != nil {
		return err
	}
	allowed, err := prefixes(cfg.AllowedCIDRs)
	if err != nil {
		return err
	}
	var names []string
	for _, p := range cfg.Presets {
		if p = strings.TrimSpace(p); p != "" {
			names = append(names, p)
		}
	}
	h := &Handler{
		store:   state.New(dynamodb.NewFromConfig(aws), cfg.TableName),
		keys:    keys,
		github:  newGitHubCheck(app, githubapp.Host(cfg.GitHub.ServerURL), cfg.GitHubTimeout),
		presets: names,
		allowed: allowed,
		now:     time.Now,
	}
	lambda.Start(func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return h.Handle(logging.Attach(ctx, log), req)
	})
	return nil
}

// newGitHubCheck returns the cached, time-boxed GitHub check.
func newGitHubCheck(app AppDescriber, host string, timeout time.Duration) *githubCheck {
	return &githubCheck{app: app, host: host, timeout: timeout, okTTL: time.Minute, errTTL: 15 * time.Second, now: time.Now}
}
