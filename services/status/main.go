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
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/secrets"
	"github.com/spotrunner/spotrunner/libs/service"
	"github.com/spotrunner/spotrunner/libs/state"
)

// Config is the status function's environment.
type Config struct {
	// TableName is required: the state table.
	TableName string `env:"TABLE_NAME, required"`
	// GitHubServerURL is required: https://github.com or the GHES web URL.
	GitHubServerURL string `env:"GITHUB_SERVER_URL, required"`
	// GitHubAppID is required.
	GitHubAppID int64 `env:"GITHUB_APP_ID, required"`
	// PrivateKeySecretARN is required: the secret holding the App's private key (PEM).
	PrivateKeySecretARN string `env:"PRIVATE_KEY_SECRET_ARN, required"`
	// CABundle is optional: extra PEM roots for a GHES with a private CA.
	CABundle string `env:"GITHUB_CA_BUNDLE"`
	// Presets is required: the configured preset names (comma-separated), in display order.
	Presets []string `env:"PRESETS, required"`
	// AllowedCIDRs is optional (comma-separated): only these source addresses may read the status.
	AllowedCIDRs []string `env:"STATUS_ALLOWED_CIDRS"`
	// GitHubTimeout is optional, default 800ms: how long the GitHub call may take.
	GitHubTimeout time.Duration `env:"GITHUB_CHECK_TIMEOUT, default=800ms"`
	service.Runtime
}

// Validate checks what tags cannot.
func (c *Config) Validate() error {
	if _, err := githubapp.APIBaseURL(c.GitHubServerURL); err != nil {
		return fmt.Errorf("GITHUB_SERVER_URL: %w", err)
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
	keys := secrets.New(secretsmanager.NewFromConfig(aws), time.Minute).Bind(cfg.PrivateKeySecretARN)
	app, err := githubapp.New(githubapp.Config{ServerURL: cfg.GitHubServerURL, AppID: cfg.GitHubAppID, CABundle: []byte(cfg.CABundle), Timeout: cfg.GitHubTimeout}, keys.Current)
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
		github:  newGitHubCheck(app, githubapp.Host(cfg.GitHubServerURL), cfg.GitHubTimeout),
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
