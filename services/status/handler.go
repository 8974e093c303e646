package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/state"
)

// Store is the part of the state table the status reads: a fixed number of reads whatever the
// number of jobs (a preset query, three COUNT queries on the phase index, a 25-item activity query).
type Store interface {
	PresetImages(ctx context.Context) ([]state.PresetImage, error)
	CountPhases(ctx context.Context) (state.Counts, error)
	Activity(ctx context.Context, from, to time.Time) ([]state.Hour, error)
}

// Handler answers GET /status (HTTP API, payload format 2.0).
type Handler struct {
	store   Store
	keys    KeySource
	github  *githubCheck
	presets []string       // configured preset names, in order
	allowed []netip.Prefix // optional source IP allow-list; empty: everyone
	now     func() time.Time
}

// keyWarning says how to put the private key; it names the stack output, not the secret.
const keyWarning = "The GitHub App private key is not configured: put the App's .pem file into the secret named by the stack output PrivateKeySecretArn, e.g. aws secretsmanager put-secret-value --secret-id <PrivateKeySecretArn> --secret-string file://app.private-key.pem"

// Handle builds the status document. It never returns an error: a state table it cannot read is
// a 503 with a short body, never an internal message.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	log := logging.From(ctx)
	if m := req.RequestContext.HTTP.Method; m != "" && m != http.MethodGet && m != http.MethodHead {
		return reply(http.StatusMethodNotAllowed, map[string]string{"status": "error", "message": "GET only"}), nil
	}
	if !h.permitted(req.RequestContext.HTTP.SourceIP) {
		return reply(http.StatusForbidden, map[string]string{"status": "error", "message": "forbidden"}), nil
	}
	doc, err := h.document(ctx)
	if err != nil {
		log.Error().Err(err).Msg("status: state unavailable")
		return reply(http.StatusServiceUnavailable, map[string]string{"status": "error", "message": "state temporarily unavailable"}), nil
	}
	log.Info().Str("status", doc.Status).Str("github", doc.GitHub.Status).Msg("status")
	return reply(http.StatusOK, doc), nil
}

// document reads everything at once (the GitHub call is time-boxed) and assembles the document.
func (h *Handler) document(ctx context.Context) (Document, error) {
	var (
		wg                    sync.WaitGroup
		records               []state.PresetImage
		counts                state.Counts
		hours                 []state.Hour
		keyOK                 bool
		gh                    GitHub
		recErr, cntErr, hrErr error
		keyErr                error
	)
	now := h.now().UTC()
	wg.Go(func() { records, recErr = h.store.PresetImages(ctx) })
	wg.Go(func() { counts, cntErr = h.store.CountPhases(ctx) })
	wg.Go(func() { hours, hrErr = h.store.Activity(ctx, now.Add(-23*time.Hour), now) })
	wg.Go(func() { keyOK, keyErr = keyCheck(ctx, h.keys) })
	wg.Go(func() { gh = h.github.status(ctx) })
	wg.Wait()
	if err := errors.Join(recErr, cntErr, hrErr); err != nil {
		return Document{}, err
	}
	if keyErr != nil {
		logging.From(ctx).Warn().Err(keyErr).Msg("status: private key unreadable")
	}
	presets, warnings := presetsOf(h.presets, records)
	d := Document{
		Configuration:  Configuration{PrivateKeyConfigured: keyOK},
		GitHub:         gh,
		Presets:        presets,
		Runners:        Runners{Pending: counts.Waiting, Provisioning: counts.Idle, Running: counts.Busy},
		RecentActivity: activity(hours, now),
	}
	if !keyOK {
		warnings = append([]string{keyWarning}, warnings...)
	}
	d.Warnings = warnings
	d.Status = overall(d)
	d.Message = message(d)
	return d, nil
}

func (h *Handler) permitted(sourceIP string) bool {
	if len(h.allowed) == 0 {
		return true
	}
	ip, err := netip.ParseAddr(sourceIP)
	if err != nil {
		return false
	}
	for _, p := range h.allowed {
		if p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

func reply(code int, body any) events.APIGatewayV2HTTPResponse {
	b, _ := json.Marshal(body)
	return events.APIGatewayV2HTTPResponse{
		StatusCode: code,
		Headers:    map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"},
		Body:       string(b),
	}
}
