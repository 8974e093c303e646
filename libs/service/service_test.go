package service

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Runtime
	QueueURL string `env:"SERVICE_TEST_QUEUE_URL, required"`
}

// TestStart: a config embedding Runtime is loaded with its own fields and the shared ones; a
// missing required variable stops the start naming it; a bad log level too.
func TestStart(t *testing.T) {
	t.Setenv("SERVICE_TEST_QUEUE_URL", "http://127.0.0.1/q")
	t.Setenv("LOG_LEVEL", "debug")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
	t.Setenv("AWS_REGION", "us-east-1")
	var cfg testConfig
	log, aws, err := Start(context.Background(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.QueueURL != "http://127.0.0.1/q" || log.GetLevel().String() != "debug" || *aws.BaseEndpoint != "http://127.0.0.1:5000" {
		t.Errorf("cfg %+v, level %s, endpoint %v", cfg, log.GetLevel(), aws.BaseEndpoint)
	}

	t.Setenv("LOG_LEVEL", "loud")
	if _, _, err := Start(context.Background(), &testConfig{}); err == nil || !strings.Contains(err.Error(), "loud") {
		t.Errorf("bad log level: err = %v", err)
	}
	t.Setenv("LOG_LEVEL", "info")
	t.Setenv("SERVICE_TEST_QUEUE_URL", "") // restored after the test
	os.Unsetenv("SERVICE_TEST_QUEUE_URL")
	if _, _, err := Start(context.Background(), &testConfig{}); err == nil || !strings.Contains(err.Error(), "SERVICE_TEST_QUEUE_URL") {
		t.Errorf("missing variable: err = %v", err)
	}
}

type appConfig struct {
	GitHub
	Runtime
}

func (c *appConfig) Validate() error { return c.GitHub.Check() }

// TestGitHubConfig: a config embedding GitHub reads the App's four variables; a server URL with a
// path fails the start naming GITHUB_SERVER_URL; App builds a client without a network call.
func TestGitHubConfig(t *testing.T) {
	t.Setenv("GITHUB_SERVER_URL", "https://ghes.example.com")
	t.Setenv("GITHUB_APP_ID", "4242")
	t.Setenv("PRIVATE_KEY_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:key-AbCdEf")
	t.Setenv("AWS_REGION", "us-east-1")
	var cfg appConfig
	_, aws, err := Start(context.Background(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := GitHub{ServerURL: "https://ghes.example.com", AppID: 4242, PrivateKeySecretARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:key-AbCdEf"}
	if cfg.GitHub != want {
		t.Errorf("GitHub = %+v, want %+v", cfg.GitHub, want)
	}
	if _, _, err := cfg.App(aws, time.Minute, 0); err != nil {
		t.Errorf("App: %v", err)
	}
	t.Setenv("GITHUB_SERVER_URL", "https://ghes.example.com/api/v3")
	if _, _, err := Start(context.Background(), &appConfig{}); err == nil || !strings.Contains(err.Error(), "GITHUB_SERVER_URL") {
		t.Errorf("server URL with a path: err = %v", err)
	}
}
