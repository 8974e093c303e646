package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/spotrunner/spotrunner/internal/ghessim"
	"github.com/spotrunner/spotrunner/libs/githubapp"
)

func testKeyPEM(testing.TB) []byte { return ghessim.AppKeyPEM() }

// TestAccess: only GET and HEAD; with an allow-list only its addresses (IPv4, IPv6, mapped).
func TestAccess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, ip string
		allowed          []string
		want             int
	}{
		{"public GET", "GET", "198.51.100.7", nil, 200},
		{"POST", "POST", "198.51.100.7", nil, 405},
		{"in the allow-list", "GET", "10.1.2.3", []string{"10.0.0.0/8"}, 200},
		{"IPv4-mapped IPv6 in the allow-list", "GET", "::ffff:10.1.2.3", []string{"10.0.0.0/8"}, 200},
		{"IPv6 in the allow-list", "GET", "2001:db8::1", []string{"10.0.0.0/8", "2001:db8::/32"}, 200},
		{"outside the allow-list", "GET", "198.51.100.7", []string{"10.0.0.0/8"}, 403},
		{"no source address", "GET", "", []string{"10.0.0.0/8"}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var allowed []netip.Prefix
			for _, c := range tt.allowed {
				allowed = append(allowed, netip.MustParsePrefix(c))
			}
			h := &Handler{store: fakeStore{}, keys: fakeKey{pem: testKeyPEM(t)}, allowed: allowed, now: time.Now,
				github: &githubCheck{app: fakeApp{}, timeout: time.Second, now: time.Now}}
			var req events.APIGatewayV2HTTPRequest
			req.RequestContext.HTTP.Method, req.RequestContext.HTTP.SourceIP = tt.method, tt.ip
			if resp, _ := h.Handle(context.Background(), req); resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tt.want, resp.Body)
			}
		})
	}
}

// slowApp answers after delay, or when the call's context ends; it counts calls.
type slowApp struct {
	delay time.Duration
	calls atomic.Int64
}

func (s *slowApp) Describe(ctx context.Context) (githubapp.AppInfo, error) {
	s.calls.Add(1)
	select {
	case <-time.After(s.delay):
		return githubapp.AppInfo{Slug: "spot-runner"}, nil
	case <-ctx.Done():
		return githubapp.AppInfo{}, ctx.Err()
	}
}

// TestGitHubCheckBounded: a GitHub that takes 5 s is given 200 ms, the answer says it timed out,
// and twenty requests within the error TTL make one call; a good answer is kept for its TTL.
func TestGitHubCheckBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	app := &slowApp{delay: 5 * time.Second}
	c := &githubCheck{app: app, host: "ghes.example.com", timeout: 200 * time.Millisecond, okTTL: time.Minute, errTTL: 15 * time.Second, now: func() time.Time { return now }}
	start := time.Now()
	var wg sync.WaitGroup
	results := make([]GitHub, 20)
	for i := range results {
		wg.Go(func() { results[i] = c.status(context.Background()) })
	}
	wg.Wait()
	if took := time.Since(start); took > time.Second {
		t.Errorf("twenty requests took %s, want the one time-boxed call", took)
	}
	for _, r := range results {
		if r.Status != githubError || !strings.Contains(r.Message, "did not answer within 200ms") {
			t.Fatalf("result %+v, want a timeout error", r)
		}
	}
	if n := app.calls.Load(); n != 1 {
		t.Errorf("%d calls to GitHub, want 1", n)
	}
	app.delay = 0
	now = now.Add(16 * time.Second)
	if r := c.status(context.Background()); r.Status != githubConnected || r.AppSlug == nil || *r.AppSlug != "spot-runner" {
		t.Errorf("after the error TTL: %+v", r)
	}
	now = now.Add(59 * time.Second)
	c.status(context.Background())
	if n := app.calls.Load(); n != 2 {
		t.Errorf("%d calls, want the good answer kept for its TTL", n)
	}
}

func pemOf(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// testKey2 is the key of testKeyPEM.
func testKey2() *rsa.PrivateKey { return ghessim.AppKey() }
