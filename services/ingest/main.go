// Command ingest is the Lambda behind POST /webhook. For each GitHub delivery it, in order:
//  1. rejects bodies over MAX_BODY_BYTES (413) and decodes base64 bodies flagged by API Gateway;
//  2. verifies X-Hub-Signature-256 over the raw body against the webhook secret from Secrets
//     Manager, current and previous (401 when neither matches);
//  3. answers ping (200); ignores other events, non-spotrunner jobs, filtered owners/repos and
//     public repositories (by default only on github.com) with 202 "ignored" and the reason, but
//     forwards the in_progress / completed of any job that runs on one of our runners;
//  4. puts one message per workflow_job queued / in_progress / completed on the FIFO queue
//     (202 "queued"), or answers 503 when the queue or Secrets Manager is unavailable, or does not
//     answer before the handling deadline, so the delivery can be redelivered.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/secrets"
	"github.com/spotrunner/spotrunner/libs/service"
)

// Config is ingest's environment.
type Config struct {
	// QueueURL is required: the FIFO job queue.
	QueueURL string `env:"QUEUE_URL, required"`
	// WebhookSecretARN is required: the Secrets Manager secret holding the webhook secret.
	WebhookSecretARN string `env:"WEBHOOK_SECRET_ARN, required"`
	// GitHubServerURL is required: https://github.com or the GHES web URL; jobs are keyed by its host.
	GitHubServerURL string `env:"GITHUB_SERVER_URL, required"`
	// AllowedOwners is optional (comma-separated): when set, only these orgs/users are served.
	AllowedOwners []string `env:"ALLOWED_OWNERS"`
	// AllowedRepos is optional (comma-separated owner/repo): when set, only these repositories.
	AllowedRepos []string `env:"ALLOWED_REPOS"`
	// AllowPublicRepos is optional, default auto: "true" serves jobs of public repositories,
	// "false" ignores them, "auto" ignores them on github.com (anyone's fork could run code on the
	// runners) and serves them on GHES (public there means visible to the instance's own users).
	AllowPublicRepos string `env:"ALLOW_PUBLIC_REPOS, default=auto"`
	// MaxBodyBytes is optional, default 1 MiB (real workflow_job payloads are 10-30 KB).
	MaxBodyBytes int `env:"MAX_BODY_BYTES, default=1048576"`
	// SecretCacheTTL is optional, default 5m: how long the webhook secret is kept in memory.
	SecretCacheTTL time.Duration `env:"SECRET_CACHE_TTL, default=5m"`
	service.Runtime
}

// Validate checks what tags cannot.
func (c *Config) Validate() error {
	if _, err := githubapp.APIBaseURL(c.GitHubServerURL); err != nil {
		return fmt.Errorf("GITHUB_SERVER_URL: %w", err)
	}
	if c.MaxBodyBytes < 64<<10 || c.MaxBodyBytes > 10<<20 {
		return fmt.Errorf("MAX_BODY_BYTES %d: want 64 KiB to 10 MiB", c.MaxBodyBytes)
	}
	if _, err := allowPublicRepos(c.AllowPublicRepos, c.GitHubServerURL); err != nil {
		return err
	}
	for _, r := range c.AllowedRepos {
		if o, n, ok := strings.Cut(r, "/"); !ok || o == "" || n == "" {
			return fmt.Errorf("ALLOWED_REPOS: %q is not owner/repo", r)
		}
	}
	return nil
}

// allowPublicRepos decides whether jobs of public repositories are served: setting is
// ALLOW_PUBLIC_REPOS ("auto", "true" or "false", any case; empty is auto), and auto means no on
// github.com, yes on any other host (GHES).
func allowPublicRepos(setting, serverURL string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(setting)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "auto", "":
		host := githubapp.Host(serverURL)
		return host != "github.com" && host != "api.github.com", nil
	}
	return false, fmt.Errorf("ALLOW_PUBLIC_REPOS %q: want auto, true or false", setting)
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg Config
	log, aws, err := service.Start(ctx, &cfg)
	if err != nil {
		return err
	}
	allowPublic, err := allowPublicRepos(cfg.AllowPublicRepos, cfg.GitHubServerURL)
	if err != nil {
		return err
	}
	h := &Handler{
		secrets: secrets.New(secretsmanager.NewFromConfig(aws), cfg.SecretCacheTTL).Bind(cfg.WebhookSecretARN),
		queue:   queue.NewPublisher(sqs.NewFromConfig(aws), cfg.QueueURL),
		host:    githubapp.Host(cfg.GitHubServerURL),
		filter:  Filter{Owners: lowerSet(cfg.AllowedOwners), Repos: lowerSet(cfg.AllowedRepos), AllowPublic: allowPublic},
		maxBody: cfg.MaxBodyBytes,
		now:     time.Now,
	}
	lambda.Start(func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return h.Handle(logging.Attach(ctx, log), req)
	})
	return nil
}

// lowerSet turns a comma list into a lookup set of trimmed, lowercased names.
func lowerSet(items []string) map[string]bool {
	set := map[string]bool{}
	for _, it := range items {
		if it = strings.ToLower(strings.TrimSpace(it)); it != "" {
			set[it] = true
		}
	}
	return set
}
