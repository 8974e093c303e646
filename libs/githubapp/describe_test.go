package githubapp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/ghessim"
	"github.com/spotrunner/spotrunner/libs/secrets"
)

// otherKey is an RSA key that is not the App's.
var otherKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// TestDescribe (simulator, over HTTP or TLS): each case starts its own simulator for App 4242
// (slug "spot-runner-ghes") or a dead loopback address, and asks Describe with a key, an App id,
// a CA bundle and a deadline. The App must be described, or the failure must be the sentinel a
// status page explains (a network failure also an ErrUnavailable); no error text may carry a JWT
// the server received or a line of the key.
func TestDescribe(t *testing.T) {
	t.Parallel()
	pemOf := func(k *rsa.PrivateKey) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	}
	keyOf := func(b []byte, err error) KeySource { return func(context.Context) ([]byte, error) { return b, err } }
	missing := fmt.Errorf("get secret value of %q: %w", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app-key", secrets.ErrNotFound)
	connected := AppInfo{ID: appID, Slug: "spot-runner-ghes", Name: "Spot Runner (GHES)"}
	tests := []struct {
		name    string
		serve   string // "http", "tls" or "down" (nothing listens)
		trustCA bool   // Config.CABundle holds the TLS server's certificate
		fault   func(s *ghessim.Server)
		key     KeySource // default: the App's key
		appID   int64     // default: appID
		timeout time.Duration
		want    AppInfo
		wantErr error
	}{
		{name: "connected", serve: "http", want: connected},
		{name: "TLS with the CA bundle", serve: "tls", trustCA: true, want: connected},
		{name: "TLS, certificate not trusted", serve: "tls", wantErr: ErrTLS},
		{name: "key of another app", serve: "http", key: keyOf(pemOf(otherKey()), nil), wantErr: ErrUnauthorized},
		{name: "wrong App id", serve: "http", appID: appID + 1, wantErr: ErrUnauthorized},
		{name: "no key", serve: "http", key: keyOf(nil, missing), wantErr: secrets.ErrNotFound},
		{name: "garbage key", serve: "http", key: keyOf([]byte("-----BEGIN RSA PRIVATE KEY-----\nTOTALLYSECRETBYTES\n-----END RSA PRIVATE KEY-----\n"), nil), wantErr: ErrBadPrivateKey},
		{name: "server down", serve: "down", wantErr: ErrUnreachable},
		{name: "slow server", serve: "http", fault: func(s *ghessim.Server) { s.Fail("GET /app", 1, 0, ghessim.WithDelay(5*time.Second)) },
			timeout: 300 * time.Millisecond, wantErr: ErrTimeout},
		{name: "server failing", serve: "http", fault: func(s *ghessim.Server) { s.Fail("GET /app", 1, 503) }, wantErr: ErrUnavailable},
		{name: "not a GitHub API", serve: "http", fault: func(s *ghessim.Server) { s.Fail("GET /app", 1, 404) }, wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := ghessim.Options{AppID: appID, AppPublicKey: &appKey().PublicKey, AppSlug: "spot-runner-ghes", AppName: "Spot Runner (GHES)"}
			var (
				s        *ghessim.Server
				base     string
				ca, cert []byte
			)
			switch tt.serve {
			case "http":
				s, base = ghessim.Start(t, opts)
			case "tls":
				s, base, cert = ghessim.StartTLS(t, opts)
				if tt.trustCA {
					ca = cert
				}
			case "down":
				base = deadAddress(t)
			}
			if tt.fault != nil {
				tt.fault(s)
			}
			cfg := Config{ServerURL: base, AppID: appID, CABundle: ca}
			if tt.appID != 0 {
				cfg.AppID = tt.appID
			}
			key := tt.key
			if key == nil {
				key = staticKey
			}
			a, err := New(cfg, key)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}

			got, err := a.Describe(ctx)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AppInfo (-want +got):\n%s", diff)
			}
			if err == nil {
				return
			}
			if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error quotes the key: %v", err)
			}
			if s != nil {
				for _, j := range s.JWTs() {
					if strings.Contains(err.Error(), j) {
						t.Errorf("error carries the app JWT: %v", err)
					}
				}
			}
		})
	}
}

// TestSentinelFamilies: the finer sentinels are the coarse ones callers already classify on.
func TestSentinelFamilies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err, family error
	}{
		{ErrUnauthorized, ErrForbidden},
		{ErrTLS, ErrUnavailable},
		{ErrTimeout, ErrUnavailable},
		{ErrUnreachable, ErrUnavailable},
	}
	for _, tt := range tests {
		if wrapped := fmt.Errorf("get github app 1: %w", tt.err); !errors.Is(wrapped, tt.family) {
			t.Errorf("%v is not a %v", tt.err, tt.family)
		}
	}
}

// deadAddress returns an http URL on loopback where nothing listens: a port just bound and let go.
func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}
