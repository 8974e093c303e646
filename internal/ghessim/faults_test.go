package ghessim

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
	"github.com/google/go-cmp/cmp"
)

// TestFail: no fixtures. Each case injects faults, then sends requests with a valid installation
// token; the statuses must show the fault answering exactly n matching requests, before
// authentication, and leaving other routes alone; Calls must record each answer.
func TestFail(t *testing.T) {
	t.Parallel()
	const jit = "/orgs/acme/actions/runners/generate-jitconfig"
	const list = "/orgs/acme/actions/runners"
	tests := []struct {
		name  string
		fail  func(s *Server)
		calls []Call // Status is the status wanted
	}{
		{
			name: "two failures then success",
			fail: func(s *Server) { s.Fail("POST /orgs/*/actions/runners/generate-jitconfig", 2, http.StatusBadGateway) },
			calls: []Call{
				{"POST", jit, http.StatusBadGateway}, {"GET", list, http.StatusOK},
				{"POST", jit, http.StatusBadGateway}, {"POST", jit, http.StatusCreated},
			},
		},
		{
			name:  "pattern for another owner",
			fail:  func(s *Server) { s.Fail("POST /orgs/other/actions/runners/generate-jitconfig", 1, 500) },
			calls: []Call{{"POST", jit, http.StatusCreated}},
		},
		{
			name: "oldest fault first",
			fail: func(s *Server) {
				s.Fail("GET /orgs/*/actions/runners", 1, http.StatusServiceUnavailable)
				s.Fail("GET /orgs/acme/*/*", 1, http.StatusInternalServerError)
			},
			calls: []Call{{"GET", list, http.StatusServiceUnavailable}, {"GET", list, http.StatusInternalServerError}, {"GET", list, http.StatusOK}},
		},
		{
			name:  "delay only, then served",
			fail:  func(s *Server) { s.Fail("GET /orgs/*/actions/runners", 1, 0, WithDelay(50*time.Millisecond)) },
			calls: []Call{{"GET", list, http.StatusOK}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, base := startSim(t)
			tok := installationToken(t, base, strconv.Itoa(testOrgInst))
			tt.fail(s)
			body := map[string]any{"name": "r", "runner_group_id": 1, "labels": []string{"x"}}
			for _, c := range tt.calls {
				got := call(t, c.Method, base+"/api/v3"+c.Path, "token "+tok, body)
				if got.status >= 500 {
					var e basicError
					got.decode(t, &e)
					if diff := cmp.Diff(basicError{Message: http.StatusText(got.status), DocumentationURL: docsURL, Status: strconv.Itoa(got.status)}, e); diff != "" {
						t.Errorf("error body (-want +got):\n%s", diff)
					}
				}
			}
			calls := s.Calls()
			if diff := cmp.Diff(tt.calls, calls[len(calls)-len(tt.calls):]); diff != "" {
				t.Errorf("Calls() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFailRateLimit: no fixtures. A rate-limit fault on the token route must answer 403 with
// GitHub's secondary-rate-limit body and headers, before the JWT is checked (an expired JWT
// still gets the 403), while the JWT is still recorded.
func TestFailRateLimit(t *testing.T) {
	t.Parallel()
	s, base := startSim(t)
	s.Fail("POST /app/installations/*/access_tokens", 1, http.StatusForbidden, WithRateLimit())
	expired := appJWT(t, appKey(), func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })
	got := call(t, "POST", base+"/api/v3/app/installations/11/access_tokens", "Bearer "+expired, nil)
	if got.status != http.StatusForbidden {
		t.Fatalf("status = %d, want 403", got.status)
	}
	var e basicError
	got.decode(t, &e)
	if !strings.HasSuffix(e.DocumentationURL, "secondary-rate-limits") || !strings.Contains(e.Message, "secondary rate limit") {
		t.Errorf("body %s is not a secondary rate limit", got.body)
	}
	headers := map[string]string{}
	for _, h := range []string{"Retry-After", "X-Ratelimit-Remaining"} {
		headers[h] = got.header.Get(h)
	}
	if diff := cmp.Diff(map[string]string{"Retry-After": "1", "X-Ratelimit-Remaining": "0"}, headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if reset, err := strconv.ParseInt(got.header.Get("X-Ratelimit-Reset"), 10, 64); err != nil || reset < time.Now().Unix() {
		t.Errorf("X-Ratelimit-Reset = %q, want a time ahead", got.header.Get("X-Ratelimit-Reset"))
	}
	if diff := cmp.Diff([]string{expired}, s.JWTs()); diff != "" {
		t.Errorf("JWTs() (-want +got):\n%s", diff)
	}
}

// TestFailDelay: no fixtures. A delay longer than the client's timeout must make the client time
// out, and the call be recorded with status 0 (no answer) once the server notices.
func TestFailDelay(t *testing.T) {
	t.Parallel()
	s, base := startSim(t)
	s.Fail("GET /app/installations/*", 1, http.StatusInternalServerError, WithDelay(10*time.Second))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v3/app/installations/11", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do = %v, want a timeout", err)
	}
	want := []Call{{Method: "GET", Path: "/app/installations/11", Status: 0}}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Calls()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if diff := cmp.Diff(want, s.Calls()); diff != "" {
		t.Errorf("Calls() (-want +got):\n%s", diff)
	}
}

// TestUnknownRoute: no fixtures. Paths GitHub does not serve, or a method a path does not have,
// must get GitHub's 404 body, not Go's 404 or 405 text.
func TestUnknownRoute(t *testing.T) {
	t.Parallel()
	tests := []struct{ method, path string }{
		{"GET", "/api/v3/nope"},
		{"PUT", "/api/v3/orgs/acme/actions/runners"},
		{"GET", "/orgs/acme/actions/runners"}, // outside /api/v3
		{"GET", "/api/v3/orgs/acme/actions/runners/notanumber"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			_, base := startSim(t)
			tok := installationToken(t, base, strconv.Itoa(testOrgInst))
			got := call(t, tt.method, base+tt.path, "token "+tok, nil)
			var e basicError
			got.decode(t, &e)
			if diff := cmp.Diff(basicError{Message: "Not Found", DocumentationURL: docsURL, Status: "404"}, e); got.status != http.StatusNotFound || diff != "" {
				t.Errorf("status %d, body (-want +got):\n%s", got.status, diff)
			}
		})
	}
}
