package ghessim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

const (
	// appHookID is the id of the app's one webhook.
	appHookID = 1
	// deliveryTimeout is how long GHES waits for a webhook receiver to answer.
	deliveryTimeout = 30 * time.Second
	// maxRecordedResponse bounds the receiver's answer kept for the deliveries routes.
	maxRecordedResponse = 64 << 10
)

// SendWorkflowJob sends a signed workflow_job webhook for the job, as of action ("queued",
// "waiting", "in_progress", "completed"; see jobRecord.asOf), to url, which must be on loopback.
// The payload has GitHub's shape: action, workflow_job, repository, installation, sender, and
// organization when the owner is one. The delivery is recorded for the hook-deliveries routes,
// failed or not. It returns the delivery's GUID and the receiver's status; err is set when the
// webhook could not be built or the receiver could not be reached in time.
func (s *Server) SendWorkflowJob(ctx context.Context, url string, jobID int64, action string) (guid string, status int, err error) {
	d, err := s.workflowJobDelivery(url, jobID, action)
	if err != nil {
		return "", 0, fmt.Errorf("send workflow_job %s for job %d: %w", action, jobID, err)
	}
	status, err = s.deliver(ctx, d)
	return d.guid, status, err
}

func (s *Server) workflowJobDelivery(url string, jobID int64, action string) (*delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[jobID]
	if j == nil {
		return nil, errors.New("no such job")
	}
	view, err := j.asOf(action)
	if err != nil {
		return nil, err
	}
	r := s.repos[key(j.Owner, j.Repo)] // AddJob added it
	var inst *installation
	for _, i := range s.installations {
		if i.account == r.owner {
			inst = i
		}
	}
	if inst == nil {
		return nil, fmt.Errorf("the app is not installed on %s, so GitHub would not send it this event", r.owner.login)
	}
	payload := map[string]any{
		"action":       action,
		"workflow_job": s.jobJSON(&view),
		"repository":   s.repoJSON(r),
		"installation": map[string]any{"id": inst.id, "node_id": nodeID("IntegrationInstallation", inst.id)},
		"sender":       s.siteUserJSON(),
	}
	if r.owner.typ == "Organization" {
		payload["organization"] = s.orgJSON(r.owner)
	}
	return newDelivery(url, "workflow_job", action, inst.id, r.id, payload), nil
}

// SendPing sends the ping GitHub sends to an app's webhook URL when the app is set up.
func (s *Server) SendPing(ctx context.Context, url string) (guid string, status int, err error) {
	now := timestamp(s.now())
	payload := map[string]any{
		"zen":     "Design for failure.",
		"hook_id": appHookID,
		"hook": map[string]any{
			"type":           "App",
			"id":             appHookID,
			"name":           "web",
			"active":         true,
			"events":         []string{"workflow_job"},
			"config":         map[string]any{"content_type": "json", "insecure_ssl": "0", "url": url},
			"updated_at":     now,
			"created_at":     now,
			"app_id":         s.opts.AppID,
			"deliveries_url": s.apiURL() + "/app/hook/deliveries",
		},
		"sender": s.siteUserJSON(),
	}
	d := newDelivery(url, "ping", "", 0, 0, payload)
	status, err = s.deliver(ctx, d)
	return d.guid, status, err
}

func newDelivery(url, event, action string, installationID, repositoryID int64, payload any) *delivery {
	body, err := json.Marshal(payload)
	if err != nil {
		panic("ghessim: encode webhook payload: " + err.Error()) // our own maps always encode
	}
	return &delivery{guid: newGUID(), event: event, action: action, installationID: installationID,
		repositoryID: repositoryID, url: url, payload: body}
}

// deliver POSTs d to its URL the way GitHub's hookshot does, records the outcome on d and the
// delivery in the server's list, and returns the receiver's status.
func (s *Server) deliver(ctx context.Context, d *delivery) (int, error) {
	if err := loopbackOnly(d.url); err != nil {
		return 0, fmt.Errorf("deliver %s %s: %w", d.event, d.guid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(d.payload))
	if err != nil {
		return 0, fmt.Errorf("deliver %s %s: %w", d.event, d.guid, err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitHub-Hookshot/ghessim")
	h.Set("X-GitHub-Delivery", d.guid)
	h.Set("X-GitHub-Event", d.event)
	h.Set("X-GitHub-Hook-ID", fmt.Sprint(appHookID))
	h.Set("X-GitHub-Hook-Installation-Target-ID", fmt.Sprint(s.opts.AppID))
	h.Set("X-GitHub-Hook-Installation-Target-Type", "integration")
	h.Set("X-GitHub-Enterprise-Host", s.opts.Host)
	h.Set("X-GitHub-Enterprise-Version", "3.19.0")
	if len(s.opts.WebhookSecret) > 0 {
		h.Set("X-Hub-Signature", "sha1="+sign(sha1.New, s.opts.WebhookSecret, d.payload))
		h.Set("X-Hub-Signature-256", "sha256="+sign(sha256.New, s.opts.WebhookSecret, d.payload))
	}
	d.requestHeaders = flatten(h)

	start := s.now()
	resp, err := s.client.Do(req)
	d.deliveredAt, d.duration = start, s.now().Sub(start)
	if err == nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxRecordedResponse))
		resp.Body.Close()
		d.statusCode, d.responseHeaders, d.responseBody = resp.StatusCode, flatten(resp.Header), string(body)
		d.status = "OK"
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			d.status = fmt.Sprintf("Invalid HTTP Response: %d", resp.StatusCode)
		}
	} else {
		// GitHub records an unreachable receiver as a 502 (its API example: "failed to connect", 502).
		d.statusCode, d.status = http.StatusBadGateway, "failed to connect"
		if errors.Is(err, context.DeadlineExceeded) {
			d.status = "timed out"
		}
	}
	s.mu.Lock()
	d.id = s.id()
	s.deliveries = append(s.deliveries, d)
	s.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("deliver %s %s: %w", d.event, d.guid, err)
	}
	return d.statusCode, nil
}

// loopbackOnly refuses any receiver off this machine: the simulator exists for tests, and a test
// that sends webhooks elsewhere is a bug.
func loopbackOnly(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("receiver %q is not an http(s) URL", raw)
	}
	if u.Hostname() == "localhost" {
		return nil
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("receiver %q is not on loopback", raw)
	}
	return nil
}

// sign is the hex HMAC of body, as in X-Hub-Signature(-256).
func sign(h func() hash.Hash, secret, body []byte) string {
	mac := hmac.New(h, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// flatten keeps the first value of each header, the form of GitHub's delivery records.
func flatten(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = v[0]
	}
	return out
}
