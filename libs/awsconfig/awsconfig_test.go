package awsconfig

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// TestEndpointOverride: a client built from Load with EndpointURL set sends its request to that
// endpoint (a recording httptest server on loopback), never to AWS.
func TestEndpointOverride(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = w.Write([]byte(`{"QueueUrls":[]}`))
	}))
	t.Cleanup(srv.Close)

	cfg, err := Load(context.Background(), Options{Region: "eu-west-1", EndpointURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Credentials = credentials.NewStaticCredentialsProvider("k", "s", "")
	if _, err := sqs.NewFromConfig(cfg).ListQueues(context.Background(), &sqs.ListQueuesInput{}); err != nil {
		t.Fatalf("ListQueues through the override: %v", err)
	}
	if hits.Load() != 1 {
		t.Errorf("endpoint got %d requests, want 1", hits.Load())
	}
	if got := aws.ToString(cfg.BaseEndpoint); got != srv.URL {
		t.Errorf("BaseEndpoint = %q, want %q", got, srv.URL)
	}
	if cfg.Retryer().MaxAttempts() != 3 {
		t.Errorf("MaxAttempts = %d, want the default 3", cfg.Retryer().MaxAttempts())
	}
}
