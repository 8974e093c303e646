package main

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/secrets"
)

// TestStatusCodes: fixtures are hand-made deliveries (spotrunnerJob and variants). Each must get
// its documented status code and a short JSON body, and only the forwarded ones reach the queue.
func TestStatusCodes(t *testing.T) {
	t.Parallel()
	job := spotrunnerJob("queued")
	tests := []struct {
		name      string
		req       func() events.APIGatewayV2HTTPRequest
		secrets   *fakeSecrets
		queueErr  error
		filter    Filter
		want      outcome
		published int
	}{
		{name: "queued job", req: func() events.APIGatewayV2HTTPRequest { return delivery("workflow_job", "d1", job, testSecret) },
			want: outcome{202, "queued", ""}, published: 1},
		{name: "ping", req: func() events.APIGatewayV2HTTPRequest {
			return delivery("ping", "d1", []byte(`{"zen":"x"}`), testSecret)
		},
			want: outcome{200, "pong", ""}},
		{name: "missing signature", req: func() events.APIGatewayV2HTTPRequest { return delivery("workflow_job", "d1", job, "") },
			want: outcome{401, "error", "bad or missing signature"}},
		{name: "wrong secret", req: func() events.APIGatewayV2HTTPRequest { return delivery("workflow_job", "d1", job, "other") },
			want: outcome{401, "error", "bad or missing signature"}},
		{name: "sha1 header only", req: func() events.APIGatewayV2HTTPRequest {
			r := delivery("workflow_job", "d1", job, "")
			r.Headers["x-hub-signature"] = "sha1=0000000000000000000000000000000000000000"
			return r
		}, want: outcome{401, "error", "bad or missing signature"}},
		{name: "signature over another body", req: func() events.APIGatewayV2HTTPRequest {
			r := delivery("workflow_job", "d1", job, testSecret)
			r.Body = strings.Replace(r.Body, "acme", "evil", 1)
			return r
		}, want: outcome{401, "error", "bad or missing signature"}},
		{name: "previous secret during rotation", secrets: &fakeSecrets{current: []byte("new-secret-value"), previous: []byte(testSecret)},
			req:  func() events.APIGatewayV2HTTPRequest { return delivery("workflow_job", "d1", job, testSecret) },
			want: outcome{202, "queued", ""}, published: 1},
		{name: "secret rotated after it was cached", secrets: &fakeSecrets{current: []byte("old-secret-value"), rotated: []byte(testSecret)},
			req:  func() events.APIGatewayV2HTTPRequest { return delivery("workflow_job", "d1", job, testSecret) },
			want: outcome{202, "queued", ""}, published: 1},
		{name: "wrong secret after a refresh", secrets: &fakeSecrets{current: []byte("old-secret-value"), rotated: []byte("newer-secret-value")},
			req:  func() events.APIGatewayV2HTTPRequest { return delivery("workflow_job", "d1", job, testSecret) },
			want: outcome{401, "error", "bad or missing signature"}},
		{name: "base64 body", req: func() events.APIGatewayV2HTTPRequest {
			r := delivery("workflow_job", "d1", job, testSecret)
			r.Body, r.IsBase64Encoded = base64.StdEncoding.EncodeToString(job), true
			return r
		}, want: outcome{202, "queued", ""}, published: 1},
		{name: "bad base64", req: func() events.APIGatewayV2HTTPRequest {
			r := delivery("workflow_job", "d1", job, testSecret)
			r.Body, r.IsBase64Encoded = "***", true
			return r
		}, want: outcome{400, "error", "body is not valid base64"}},
		{name: "body too large", req: func() events.APIGatewayV2HTTPRequest {
			big := []byte(`{"pad":"` + strings.Repeat("x", 1<<20) + `"}`)
			return delivery("workflow_job", "d1", big, testSecret)
		}, want: outcome{413, "error", "body too large"}},
		{name: "not JSON", req: func() events.APIGatewayV2HTTPRequest {
			return delivery("workflow_job", "d1", []byte("hello"), testSecret)
		},
			want: outcome{400, "error", "not a workflow_job payload"}},
		{name: "JSON without workflow_job", req: func() events.APIGatewayV2HTTPRequest {
			return delivery("workflow_job", "d1", []byte(`{"action":"queued"}`), testSecret)
		}, want: outcome{400, "error", "not a workflow_job payload"}},
		{name: "no installation", req: func() events.APIGatewayV2HTTPRequest {
			b := []byte(strings.Replace(string(job), `"installation":{"id":42}`, `"x":1`, 1))
			return delivery("workflow_job", "d1", b, testSecret)
		}, want: outcome{400, "error", "no installation: deliveries must come from the GitHub App"}},
		{name: "other event", req: func() events.APIGatewayV2HTTPRequest { return delivery("push", "d1", []byte(`{}`), testSecret) },
			want: outcome{202, "ignored", "event push is not used"}},
		{name: "not a spotrunner job", req: func() events.APIGatewayV2HTTPRequest {
			return delivery("workflow_job", "d1", spotrunnerJob("queued", "ubuntu-latest"), testSecret)
		}, want: outcome{202, "ignored", "no spotrunner label"}},
		{name: "malformed spotrunner label is forwarded for the record", req: func() events.APIGatewayV2HTTPRequest {
			return delivery("workflow_job", "d1", spotrunnerJob("queued", "self-hosted", "spotrunner/linux-x64/gpu=1"), testSecret)
		}, want: outcome{202, "queued", ""}, published: 1},
		{name: "waiting action", req: func() events.APIGatewayV2HTTPRequest {
			return delivery("workflow_job", "d1", spotrunnerJob("waiting"), testSecret)
		},
			want: outcome{202, "ignored", "action waiting is not used"}},
		{name: "owner not allowed", filter: Filter{Owners: map[string]bool{"other": true}},
			req:  func() events.APIGatewayV2HTTPRequest { return delivery("workflow_job", "d1", job, testSecret) },
			want: outcome{202, "ignored", "owner not allowed"}},
		{name: "owner allowed, case-insensitive", filter: Filter{Owners: map[string]bool{"acme": true}},
			req: func() events.APIGatewayV2HTTPRequest {
				return delivery("workflow_job", "d1", []byte(strings.Replace(string(job), `"acme"`, `"ACME"`, 1)), testSecret)
			},
			want: outcome{202, "queued", ""}, published: 1},
		{name: "repo not allowed", filter: Filter{Repos: map[string]bool{"acme/other": true}},
			req:  func() events.APIGatewayV2HTTPRequest { return delivery("workflow_job", "d1", job, testSecret) },
			want: outcome{202, "ignored", "repository not allowed"}},
		{name: "public repository ignored by default", req: func() events.APIGatewayV2HTTPRequest {
			return delivery("workflow_job", "d1", []byte(strings.Replace(string(job), `"private":true`, `"private":false`, 1)), testSecret)
		}, want: outcome{202, "ignored", "public repository"}},
		{name: "public repository allowed by switch", filter: Filter{AllowPublic: true}, req: func() events.APIGatewayV2HTTPRequest {
			return delivery("workflow_job", "d1", []byte(strings.Replace(string(job), `"private":true`, `"private":false`, 1)), testSecret)
		}, want: outcome{202, "queued", ""}, published: 1},
		{name: "other enterprise host", req: func() events.APIGatewayV2HTTPRequest {
			r := delivery("workflow_job", "d1", job, testSecret)
			r.Headers["x-github-enterprise-host"] = "elsewhere.example.com"
			return r
		}, want: outcome{400, "error", "delivery from another GitHub host"}},
		{name: "own enterprise host", req: func() events.APIGatewayV2HTTPRequest {
			r := delivery("workflow_job", "d1", job, testSecret)
			r.Headers["x-github-enterprise-host"] = "GHES.example.com"
			return r
		}, want: outcome{202, "queued", ""}, published: 1},
		{name: "queue unavailable", queueErr: errQueueDown,
			req:  func() events.APIGatewayV2HTTPRequest { return delivery("workflow_job", "d1", job, testSecret) },
			want: outcome{503, "error", "queue unavailable"}},
		{name: "secrets manager unavailable", secrets: &fakeSecrets{err: errQueueDown},
			req:  func() events.APIGatewayV2HTTPRequest { return delivery("workflow_job", "d1", job, testSecret) },
			want: outcome{503, "error", "temporarily unavailable"}},
		{name: "GET", req: func() events.APIGatewayV2HTTPRequest {
			r := delivery("workflow_job", "d1", job, testSecret)
			r.RequestContext.HTTP.Method = "GET"
			return r
		}, want: outcome{405, "error", "POST only"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := &fakeQueue{err: tt.queueErr}
			h := newHandler(q, tt.filter)
			if tt.secrets != nil {
				h.secrets = tt.secrets
			}
			if diff := cmp.Diff(tt.want, call(t, h, tt.req())); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
			if len(q.msgs) != tt.published {
				t.Errorf("published %d messages, want %d", len(q.msgs), tt.published)
			}
		})
	}
}

// TestSecretRotationInWarmContainer: fixtures are a real secrets.Store (5 min cache) over a fake
// Secrets Manager, warmed by a delivery signed with secret A, then rotated to current B, previous A
// a minute later. A delivery signed with B must be accepted (it triggers the refresh), and one
// signed with A right after it too, without waiting for the cache to expire; a delivery signed with
// the secret from before A (or an unrelated one) is refused.
func TestSecretRotationInWarmContainer(t *testing.T) {
	t.Parallel()
	const a, b, z = "webhook-secret-A-0123456789", "webhook-secret-B-0123456789", "webhook-secret-Z-0123456789"
	tests := []struct {
		name string
		warm map[string]string // the versions when the container read them first
	}{
		{"first rotation: no previous version when warmed", map[string]string{"AWSCURRENT": a}},
		{"later rotation: previous version Z when warmed", map[string]string{"AWSCURRENT": a, "AWSPREVIOUS": z}},
	}
	queued, refused := outcome{202, "queued", ""}, outcome{401, "error", "bad or missing signature"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sm := &fakeSecretsManager{stages: tt.warm}
			now := time.Unix(1000, 0)
			h := newHandler(&fakeQueue{}, Filter{})
			h.secrets = secrets.New(sm, 5*time.Minute).WithClock(func() time.Time { return now }).Bind("arn:webhook")
			job := spotrunnerJob("queued")

			got := []outcome{call(t, h, delivery("workflow_job", "warm", job, a))}
			sm.rotate(map[string]string{"AWSCURRENT": b, "AWSPREVIOUS": a})
			now = now.Add(time.Minute)
			for _, secret := range []string{b, a, z} {
				got = append(got, call(t, h, delivery("workflow_job", "after-rotation", job, secret)))
			}
			want := []outcome{queued, queued, queued, refused}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("deliveries signed with A; then B, A, Z after the rotation (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHandlingDeadline: fixtures are deliveries of spotrunnerJob under invocation contexts with
// and without a deadline, to a queue or a Secrets Manager that hangs, or a queue that answers.
// Every AWS call must get a context that ends answerMargin before the invocation's deadline and
// at most maxHandling after the start; a hanging call must end in the handler's own 503, returned
// before the invocation's deadline (so the runtime is never reset without an answer).
func TestHandlingDeadline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		timeout time.Duration // invocation deadline from the start; 0 = none
		hangs   string        // "queue", "secrets" or "" (nothing hangs)
		want    outcome
	}{
		{"queue hangs", time.Second, "queue", outcome{503, "error", "queue unavailable"}},
		{"secrets manager hangs", time.Second, "secrets", outcome{503, "error", "temporarily unavailable"}},
		{"deadline already within the margin", 200 * time.Millisecond, "queue", outcome{503, "error", "queue unavailable"}},
		{"far invocation deadline: capped at maxHandling", 30 * time.Second, "", outcome{202, "queued", ""}},
		{"no invocation deadline: capped at maxHandling", 0, "", outcome{202, "queued", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				rec *hang
				h   *Handler
			)
			switch tt.hangs {
			case "queue":
				q := &hangingQueue{}
				rec, h = &q.hang, newHandler(q, Filter{})
			case "secrets":
				s := &hangingSecrets{}
				rec, h = &s.hang, newHandler(&fakeQueue{}, Filter{})
				h.secrets = s
			default:
				q := &recordingQueue{}
				rec, h = &q.hang, newHandler(q, Filter{})
			}
			ctx := context.Background()
			start := time.Now()
			var invocation time.Time
			if tt.timeout > 0 {
				invocation = start.Add(tt.timeout)
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, invocation)
				defer cancel()
			}

			got := callCtx(ctx, t, h, delivery("workflow_job", "d1", spotrunnerJob("queued"), testSecret))
			end := time.Now()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
			if tt.hangs != "" && !end.Before(invocation) {
				t.Errorf("answered %v after the invocation deadline", end.Sub(invocation))
			}
			deadline, ok := rec.seen()
			if !ok {
				t.Fatal("the AWS call got a context without a deadline")
			}
			// The bounds are exact when the invocation deadline decides, and the start and end of
			// the call when maxHandling does.
			earliest, latest := start.Add(maxHandling), end.Add(maxHandling)
			if tt.timeout > 0 {
				earliest = minTime(earliest, invocation.Add(-answerMargin))
				latest = minTime(latest, invocation.Add(-answerMargin))
			}
			if deadline.Before(earliest) || deadline.After(latest) {
				t.Errorf("AWS call deadline %v after the start, want %v to %v", deadline.Sub(start), earliest.Sub(start), latest.Sub(start))
			}
		})
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// TestMessage: a queued delivery of spotrunnerJob becomes exactly the design's message, with the
// job id as group and host/job/action as deduplication id.
func TestMessage(t *testing.T) {
	t.Parallel()
	q := &fakeQueue{}
	call(t, newHandler(q, Filter{}), delivery("workflow_job", "guid-1", spotrunnerJob("queued"), testSecret))
	want := []queue.Message{{
		Version: 1, Action: "queued", DeliveryID: "guid-1", Host: "ghes.example.com", InstallationID: 42,
		Owner: "acme", OwnerType: "Organization", Repo: "app", JobID: 901, JobName: "build", RunID: 77, RunAttempt: 1,
		Labels: []string{"self-hosted", "spotrunner/linux-x64/cpu=4,ram=16"}, ReceivedAt: testNow,
	}}
	if diff := cmp.Diff(want, q.msgs); diff != "" {
		t.Fatalf("message (-want +got):\n%s", diff)
	}
	if g, d := q.msgs[0].GroupID(), q.msgs[0].DedupID(); g != "901" || d != "ghes.example.com/901/queued" {
		t.Errorf("group, dedup = %q, %q", g, d)
	}
}

// TestSignatureValid covers the header forms directly; the comparison itself is hmac.Equal.
func TestSignatureValid(t *testing.T) {
	t.Parallel()
	body := []byte(`{"a":1}`)
	good := sign("s3cret-value", body)
	tests := []struct {
		name   string
		header string
		want   bool
	}{
		{"valid", good, true},
		{"uppercase hex", "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), true},
		{"no prefix", strings.TrimPrefix(good, "sha256="), false},
		{"sha1 prefix", "sha1=" + strings.TrimPrefix(good, "sha256="), false},
		{"truncated", good[:len(good)-2], false},
		{"not hex", "sha256=" + strings.Repeat("z", 64), false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := signatureValid(tt.header, body, []byte("s3cret-value")); got != tt.want {
				t.Errorf("signatureValid(%q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
	if signatureValid(good, body, nil, []byte{}) {
		t.Error("empty secrets validated a signature")
	}
}
