package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/spotrunner/spotrunner/libs/queue"
)

const testSecret = "test-webhook-secret-0123456789"

// fakeSecrets serves fixed secret values, or fails. rotated, when set, is what a Refresh finds:
// the value the secret was rotated to after the handler cached current.
type fakeSecrets struct {
	current, previous []byte
	rotated           []byte
	err               error
}

func (f *fakeSecrets) Current(context.Context) ([]byte, error) { return f.current, f.err }
func (f *fakeSecrets) Previous(context.Context) ([]byte, bool, error) {
	return f.previous, f.previous != nil, f.err
}
func (f *fakeSecrets) Refresh(context.Context) (bool, error) {
	if f.rotated == nil || string(f.rotated) == string(f.current) {
		return false, f.err
	}
	f.current = f.rotated
	return true, nil
}

// fakeSecretsManager serves the versions of one secret by stage, as Secrets Manager does (an
// absent stage is ResourceNotFoundException: never rotated), for a real secrets.Store.
type fakeSecretsManager struct {
	mu     sync.Mutex
	stages map[string]string
}

// rotate replaces the versions, as a rotation in Secrets Manager does.
func (f *fakeSecretsManager) rotate(stages map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stages = stages
}

func (f *fakeSecretsManager) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.stages[aws.ToString(in.VersionStage)]
	if !ok {
		return nil, &smtypes.ResourceNotFoundException{Message: aws.String("no such version")}
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
}

// hang stands for an AWS endpoint that never answers: calls return only when their context is
// done. It records the deadline of the last context it was given.
type hang struct {
	mu          sync.Mutex
	deadline    time.Time
	hasDeadline bool
}

func (h *hang) wait(ctx context.Context) error {
	h.mu.Lock()
	h.deadline, h.hasDeadline = ctx.Deadline()
	h.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

// seen returns the recorded deadline.
func (h *hang) seen() (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deadline, h.hasDeadline
}

// hangingQueue is a queue whose endpoint hangs.
type hangingQueue struct{ hang }

func (q *hangingQueue) Publish(ctx context.Context, _ queue.Message) error { return q.wait(ctx) }

// hangingSecrets is a Secrets Manager that hangs.
type hangingSecrets struct{ hang }

func (s *hangingSecrets) Current(ctx context.Context) ([]byte, error) { return nil, s.wait(ctx) }
func (s *hangingSecrets) Previous(ctx context.Context) ([]byte, bool, error) {
	return nil, false, s.wait(ctx)
}
func (s *hangingSecrets) Refresh(ctx context.Context) (bool, error) { return false, s.wait(ctx) }

// recordingQueue accepts every message and records the deadline of the context it was given.
type recordingQueue struct{ hang }

func (q *recordingQueue) Publish(ctx context.Context, _ queue.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deadline, q.hasDeadline = ctx.Deadline()
	return nil
}

// fakeQueue records what was published, or fails.
type fakeQueue struct {
	mu   sync.Mutex
	err  error
	msgs []queue.Message
}

func (f *fakeQueue) Publish(_ context.Context, m queue.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.msgs = append(f.msgs, m)
	return nil
}

var errQueueDown = errors.New("sqs: service unavailable")

var testNow = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func newHandler(q Publisher, f Filter) *Handler {
	return &Handler{
		secrets: &fakeSecrets{current: []byte(testSecret)},
		queue:   q,
		host:    "ghes.example.com",
		filter:  f,
		maxBody: 1 << 20,
		now:     func() time.Time { return testNow },
	}
}

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// delivery builds the API Gateway event of a GitHub delivery signed with secret.
func delivery(event, id string, body []byte, secret string) events.APIGatewayV2HTTPRequest {
	req := events.APIGatewayV2HTTPRequest{
		Headers: map[string]string{
			"x-github-event":    event,
			"x-github-delivery": id,
			"content-type":      "application/json",
		},
		Body: string(body),
	}
	req.RequestContext.HTTP.Method = "POST"
	if secret != "" {
		req.Headers["x-hub-signature-256"] = sign(secret, body)
	}
	return req
}

// outcome is what a test compares: status code and decoded body.
type outcome struct {
	Code   int
	Status string
	Reason string
}

func call(t testing.TB, h *Handler, req events.APIGatewayV2HTTPRequest) outcome {
	t.Helper()
	return callCtx(context.Background(), t, h, req)
}

// callCtx is call with the invocation's context (its deadline is the function's).
func callCtx(ctx context.Context, t testing.TB, h *Handler, req events.APIGatewayV2HTTPRequest) outcome {
	t.Helper()
	resp, err := h.Handle(ctx, req)
	if err != nil {
		t.Fatalf("Handle() error = %v; it must always answer", err)
	}
	var body response
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("response body is not JSON: %q", resp.Body)
	}
	return outcome{resp.StatusCode, body.Status, body.Reason}
}

// spotrunnerJob is a minimal, valid queued workflow_job payload of an org's private repository.
func spotrunnerJob(action string, jobLabels ...string) []byte {
	if len(jobLabels) == 0 {
		jobLabels = []string{"self-hosted", "spotrunner/linux-x64/cpu=4,ram=16"}
	}
	p := map[string]any{
		"action": action,
		"workflow_job": map[string]any{
			"id": 901, "run_id": 77, "run_attempt": 1, "name": "build", "labels": jobLabels,
			"runner_id": nil, "runner_name": nil, "conclusion": nil,
		},
		"repository":   map[string]any{"name": "app", "private": true, "owner": map[string]any{"login": "acme", "type": "Organization"}},
		"installation": map[string]any{"id": 42},
	}
	b, _ := json.Marshal(p)
	return b
}
