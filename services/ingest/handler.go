package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/queue"
)

// SecretSource gives the webhook secret: the current value and, during a rotation, the previous
// one (ok=false when there is none), and a forced re-read of the current one. secrets.Secret does.
type SecretSource interface {
	Current(ctx context.Context) ([]byte, error)
	Previous(ctx context.Context) ([]byte, bool, error)
	Refresh(ctx context.Context) (changed bool, err error)
}

// Publisher puts a job event on the FIFO queue (queue.Publisher).
type Publisher interface {
	Publish(ctx context.Context, m queue.Message) error
}

// Handler answers POST /webhook (HTTP API, payload format 2.0).
type Handler struct {
	secrets SecretSource
	queue   Publisher
	host    string // GitHub host jobs are keyed by, from the configured server URL
	filter  Filter
	maxBody int
	now     func() time.Time
}

// Handling is capped so that ingest always gives its own answer (503 when an AWS endpoint hangs)
// instead of the runtime being reset at the function's timeout with no answer at all: it ends
// answerMargin before the invocation's deadline and at most maxHandling after the start, inside
// the 10 s GitHub.com waits for an answer (GHES waits 30 s).
const (
	answerMargin = 500 * time.Millisecond
	maxHandling  = 8 * time.Second
)

// response is the JSON body of every answer: a status and, when useful, a short reason. It never
// carries internal detail.
type response struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// Handle verifies, filters and forwards one delivery. It never returns an error: every outcome is
// an HTTP status GitHub records on the delivery (5xx ones can be redelivered).
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	deliveryID := header(req.Headers, "x-github-delivery")
	event := header(req.Headers, "x-github-event")
	ctx = logging.WithDelivery(ctx, deliveryID)
	log := logging.From(ctx)

	hctx, cancel := context.WithDeadline(ctx, handlingDeadline(ctx, time.Now()))
	code, body, m, err := h.handle(hctx, req, event, deliveryID)
	cancel()
	ev := log.Info()
	if code >= 500 {
		ev = log.Error().Err(err)
	}
	ev = ev.Str("event", event).Int("status", code).Str("outcome", body.Status)
	if body.Reason != "" {
		ev = ev.Str("reason", body.Reason)
	}
	if m.JobID != 0 {
		ev = ev.Int64("jobId", m.JobID).Str("action", m.Action).Str("repo", m.Owner+"/"+m.Repo)
	}
	ev.Msg("webhook")

	out, _ := json.Marshal(body)
	return events.APIGatewayV2HTTPResponse{
		StatusCode: code,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       string(out),
	}, nil
}

// handlingDeadline is when handling started at now must end: answerMargin before the
// invocation's deadline, and no later than maxHandling after now.
func handlingDeadline(ctx context.Context, now time.Time) time.Time {
	end := now.Add(maxHandling)
	if d, ok := ctx.Deadline(); ok && d.Add(-answerMargin).Before(end) {
		end = d.Add(-answerMargin)
	}
	return end
}

// handle is the decision path; err is the internal cause of a 5xx, for the log only.
func (h *Handler) handle(ctx context.Context, req events.APIGatewayV2HTTPRequest, event, deliveryID string) (int, response, queue.Message, error) {
	var none queue.Message
	if req.RequestContext.HTTP.Method != "" && req.RequestContext.HTTP.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, response{"error", "POST only"}, none, nil
	}
	// Reject oversize bodies before decoding or hashing them.
	if limit := h.maxBody; len(req.Body) > limit*4/3+4 {
		return http.StatusRequestEntityTooLarge, response{"error", "body too large"}, none, nil
	}
	body := []byte(req.Body)
	if req.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(req.Body); err != nil {
			return http.StatusBadRequest, response{"error", "body is not valid base64"}, none, nil
		}
	}
	if len(body) > h.maxBody {
		return http.StatusRequestEntityTooLarge, response{"error", "body too large"}, none, nil
	}

	ok, err := h.verify(ctx, header(req.Headers, "x-hub-signature-256"), body)
	if err != nil {
		return http.StatusServiceUnavailable, response{"error", "temporarily unavailable"}, none, err
	}
	if !ok {
		return http.StatusUnauthorized, response{"error", "bad or missing signature"}, none, nil
	}
	if eh := header(req.Headers, "x-github-enterprise-host"); eh != "" && !strings.EqualFold(eh, h.host) {
		// The header is not signed; keying jobs by it would let a replayed delivery with an edited
		// header count as a new job.
		return http.StatusBadRequest, response{"error", "delivery from another GitHub host"}, none, nil
	}

	switch event {
	case "ping":
		return http.StatusOK, response{Status: "pong"}, none, nil
	case "workflow_job":
	default:
		return http.StatusAccepted, response{"ignored", "event " + event + " is not used"}, none, nil
	}

	d, err := decide(body, deliveryID, h.host, h.filter, h.now())
	var bad payloadError
	if errors.As(err, &bad) {
		return http.StatusBadRequest, response{"error", bad.Error()}, none, nil
	}
	if !d.forward {
		return http.StatusAccepted, response{"ignored", d.reason}, none, nil
	}
	if err := h.queue.Publish(ctx, d.msg); err != nil {
		return http.StatusServiceUnavailable, response{"error", "queue unavailable"}, d.msg, err
	}
	return http.StatusAccepted, response{Status: "queued"}, d.msg, nil
}

// verify checks the signature against the current secret and, during a rotation, the previous.
// A mismatch re-reads the current secret once (rate-limited): GitHub does not retry a delivery,
// so one signed with a secret rotated a moment ago must not fail until the cache expires.
func (h *Handler) verify(ctx context.Context, sig string, body []byte) (bool, error) {
	ok, err := h.checkSignature(ctx, sig, body)
	if ok || err != nil {
		return ok, err
	}
	changed, err := h.secrets.Refresh(ctx)
	if err != nil || !changed {
		return false, err
	}
	return h.checkSignature(ctx, sig, body)
}

func (h *Handler) checkSignature(ctx context.Context, sig string, body []byte) (bool, error) {
	cur, err := h.secrets.Current(ctx)
	if err != nil {
		return false, err
	}
	prev, _, err := h.secrets.Previous(ctx)
	if err != nil {
		return false, err
	}
	return signatureValid(sig, body, cur, prev), nil
}

// header returns a request header; API Gateway lowercases names, other callers may not.
func header(h map[string]string, name string) string {
	if v, ok := h[name]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
