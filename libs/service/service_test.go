package service

import (
	"context"
	"os"
	"strings"
	"testing"
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
