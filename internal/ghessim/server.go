// Package ghessim is a stateful simulator of the GitHub Enterprise Server REST API, for tests and
// the local demo. It serves, under /api/v3 like GHES:
//
//   - GitHub App authentication: app JWTs (RS256, checked against the app's public key, with
//     GitHub's iss/iat/exp rules and its 401/404 messages) and installation access tokens
//     (ghs_..., one hour), scoped to the installation's account;
//   - the authenticated app itself (GET /app: id, slug, name, permissions, installations_count);
//   - installation look-ups (by id, org, repo and user);
//   - self-hosted runners at org and repo level: JIT configurations (GitHub's three runner
//     files, with an RSA-2048 key, about 4.4 KB encoded), list, get, delete;
//   - workflow jobs, which tests create and move through queued → in_progress → completed;
//   - the app's webhook deliveries (list, get, redeliver), filled by the signed workflow_job and
//     ping webhooks it sends to a receiver on loopback;
//   - fault injection (error statuses, secondary rate limits, delays) per "METHOD /path" pattern,
//     an outage of the whole API, and a record of every call and every app JWT it received.
//
// Play (play.go) makes it behave as GitHub for an end-to-end run: queued jobs are announced by
// webhook, given to the runners that come online through the /_sim endpoints (the stand-in for
// the Actions service that `run.sh --jitconfig` talks to, outside /api/v3), run, completed and
// announced again.
//
// Responses carry the fields and types of GitHub's GHES 3.19 OpenAPI description, which
// conformance_test.go checks route by route. Like GitHub, an ephemeral JIT runner is removed once
// its job completes, and a busy runner cannot be deleted.
package ghessim

import (
	"crypto/rsa"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// apiPrefix is where GHES serves its REST API.
const apiPrefix = "/api/v3"

// Options configure a Server.
type Options struct {
	// AppID is the GitHub App's id; app JWTs must carry it as iss. Required.
	AppID int64
	// AppPublicKey verifies app JWTs (RS256). Required.
	AppPublicKey *rsa.PublicKey
	// WebhookSecret signs the webhooks the server sends. Optional: without it, like GitHub with no
	// secret configured, deliveries carry no signature headers.
	WebhookSecret []byte
	// Host is the GHES host name put in URLs, payloads and the X-GitHub-Enterprise-Host header.
	// Optional, default "ghes.local".
	Host string
	// AppSlug is the app's slug in GET /app and in installations. Optional, default "spot-runner".
	AppSlug string
	// AppName is the app's display name in GET /app. Optional, default "Spot Runner".
	AppName string
}

// Call is one request the server answered.
type Call struct {
	Method string
	// Path is the request path without the /api/v3 prefix and without the query.
	Path string
	// Status is the status answered, or 0 when the client went away before an answer (a delayed
	// fault outlived the client's timeout).
	Status int
}

// Server is the simulator. It is safe for concurrent use.
type Server struct {
	opts    Options
	skew    atomic.Int64 // nanoseconds added to the clock; tests in this package move time on
	handler http.Handler // the routes, behind the /api/v3 prefix
	client  *http.Client // sends webhooks

	// actionsTenant and actionsTenantID name this server's Actions service in the URLs of JIT
	// configs, as GitHub's tenant path and token URL do.
	actionsTenant, actionsTenantID string
	// appClientID and appCreatedAt describe the app in GET /app; fixed for the server's life.
	appClientID  string
	appCreatedAt time.Time

	// sim serves the /_sim endpoints of play.go, outside the API and its record of calls.
	sim http.Handler
	// outageUntil is when the outage started by Outage ends, in Unix nanoseconds.
	outageUntil atomic.Int64
	// closed is closed by Close, which ends pending long-polls.
	closed    chan struct{}
	closeOnce sync.Once

	mu            sync.Mutex
	nextID        int64 // ids of accounts, repos, runners, labels and deliveries
	accounts      map[string]*account
	installations map[int64]*installation
	repos         map[string]*repo
	jobs          map[int64]*jobRecord
	runners       map[int64]*runnerRecord
	labelIDs      map[string]int64
	tokens        map[string]tokenGrant
	deliveries    []*delivery // oldest first
	faults        []*fault
	calls         []Call
	jwts          []string
	// changed is closed, and replaced, whenever a job or runner changes, to wake long-polls.
	changed chan struct{}
	// play is GitHub's behaviour once Play is called; nil until then.
	play *player
}

// New returns a Server with no installations, repos, jobs or runners.
func New(opts Options) *Server {
	if opts.Host == "" {
		opts.Host = "ghes.local"
	}
	if opts.AppSlug == "" {
		opts.AppSlug = "spot-runner"
	}
	if opts.AppName == "" {
		opts.AppName = "Spot Runner"
	}
	s := &Server{
		opts:            opts,
		actionsTenant:   randomAlphanumeric(50),
		actionsTenantID: newGUID(),
		appClientID:     "Iv1." + randomHex(8),
		appCreatedAt:    time.Now().UTC().Truncate(time.Second),
		client: &http.Client{
			// Hookshot does not follow redirects; neither may a redirect lead a webhook off loopback.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		accounts:      map[string]*account{},
		installations: map[int64]*installation{},
		repos:         map[string]*repo{},
		jobs:          map[int64]*jobRecord{},
		runners:       map[int64]*runnerRecord{},
		labelIDs:      map[string]int64{},
		tokens:        map[string]tokenGrant{},
		changed:       make(chan struct{}),
		closed:        make(chan struct{}),
	}
	s.handler = http.StripPrefix(apiPrefix, s.routes())
	s.sim = s.simRoutes()
	return s
}

// Start serves s on a new httptest server bound to 127.0.0.1, closed at the end of the test
// (after Close). It returns the server and its base URL ("http://127.0.0.1:PORT", without
// /api/v3).
func Start(tb testing.TB, opts Options) (*Server, string) {
	tb.Helper()
	s := New(opts)
	ts := httptest.NewServer(s) // httptest binds 127.0.0.1 unless told otherwise
	tb.Cleanup(ts.Close)
	tb.Cleanup(s.Close) // cleanups run last first: end long-polls before ts.Close waits for them
	return s, ts.URL
}

// StartTLS is Start over HTTPS, with httptest's self-signed certificate (valid for 127.0.0.1,
// trusted by no client by default). It also returns that certificate in PEM, the CA bundle a
// client needs to trust the server.
func StartTLS(tb testing.TB, opts Options) (*Server, string, []byte) {
	tb.Helper()
	s := New(opts)
	ts := httptest.NewTLSServer(s)
	tb.Cleanup(ts.Close)
	tb.Cleanup(s.Close)
	return s, ts.URL, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
}

// ServeHTTP records the call, answers an injected fault or the outage if one applies, and routes
// the rest. The /_sim endpoints are not GitHub's API: they are neither recorded nor failed.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, simPrefix+"/") {
		s.sim.ServeHTTP(w, r)
		return
	}
	rec := &statusRecorder{ResponseWriter: w}
	p := strings.TrimPrefix(r.URL.Path, apiPrefix)
	defer func() { s.record(Call{Method: r.Method, Path: p, Status: rec.status}) }()

	// JWTs are recorded before anything can refuse the request: tests assert that every request
	// carried a fresh one, including the requests a fault answered.
	s.recordJWT(r)

	h := rec.Header()
	h.Set("X-GitHub-Enterprise-Host", s.opts.Host)
	h.Set("X-GitHub-Enterprise-Version", "3.19.0")
	h.Set("X-GitHub-Media-Type", "github.v3; format=json")
	h.Set("X-GitHub-Request-Id", newGUID())

	if !strings.HasPrefix(r.URL.Path, apiPrefix+"/") {
		writeReply(rec, notFound())
		return
	}
	if time.Now().UnixNano() < s.outageUntil.Load() {
		writeReply(rec, errorReply(http.StatusServiceUnavailable, http.StatusText(http.StatusServiceUnavailable)))
		return
	}
	if f := s.takeFault(r.Method + " " + p); f != nil && f.answer(rec, r) {
		return
	}
	s.handler.ServeHTTP(rec, r)
}

// now is the server's clock: the wall clock, moved by skew.
func (s *Server) now() time.Time { return time.Now().Add(time.Duration(s.skew.Load())) }

// Calls returns every request answered so far, in the order the answers were given.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

// statusRecorder remembers the status written, for Calls.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}
