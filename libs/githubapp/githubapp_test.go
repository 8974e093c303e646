package githubapp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/ghessim"
)

const appID = 4242

var appKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func keyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(appKey())})
}

func staticKey(ctx context.Context) ([]byte, error) { return keyPEM(), nil }

// sim starts the GHES simulator with the org acme (installation 11, repo acme/app) and the user
// octocat (installation 12, repo octocat/tools), and an App client pointed at it.
func sim(t *testing.T) (*ghessim.Server, *App) {
	t.Helper()
	s, base := ghessim.Start(t, ghessim.Options{AppID: appID, AppPublicKey: &appKey().PublicKey, WebhookSecret: []byte("x")})
	s.AddInstallation(11, "acme", "Organization")
	s.AddRepo("acme", "app", true)
	s.AddInstallation(12, "octocat", "User")
	s.AddRepo("octocat", "tools", true)
	a, err := New(Config{ServerURL: base, AppID: appID}, staticKey)
	if err != nil {
		t.Fatal(err)
	}
	return s, a
}

func TestAPIBaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"https://github.com", "https://api.github.com/", false},
		{"https://GitHub.com/", "https://api.github.com/", false},
		{"https://ghes.example.com", "https://ghes.example.com/api/v3/", false},
		{"https://ghes.example.com:8443", "https://ghes.example.com:8443/api/v3/", false},
		{"https://ghes.example.com/api/v3", "", true},
		{"ghes.example.com", "", true},
		{"ftp://ghes.example.com", "", true},
	}
	for _, tt := range tests {
		got, err := APIBaseURL(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("APIBaseURL(%q) = %q, %v; want %q, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if h := Host("https://GHES.example.com:8443"); h != "ghes.example.com" {
		t.Errorf("Host = %q", h)
	}
}

// TestJITLifecycle (simulator): a JIT runner is registered for an org and for a user's repo, a
// second registration of one name is ErrConflict, the runner is found by name and deleted, and
// deleting it again is not an error. Every call went to /api/v3 with one token per installation.
func TestJITLifecycle(t *testing.T) {
	t.Parallel()
	s, a := sim(t)
	ctx := context.Background()
	for _, target := range []Target{{InstallationID: 11, Owner: "acme"}, {InstallationID: 12, Owner: "octocat", Repo: "tools"}} {
		cfg, err := a.GenerateJITConfig(ctx, target, "spotrunner-i-1", []string{"self-hosted", "spotrunner/linux-x64"}, 1)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		if cfg.Encoded == "" || cfg.RunnerID == 0 || cfg.RunnerName != "spotrunner-i-1" {
			t.Errorf("%s: config %+v", target, cfg.RunnerName)
		}
		if _, err := a.GenerateJITConfig(ctx, target, "spotrunner-i-1", []string{"self-hosted"}, 1); !errors.Is(err, ErrConflict) {
			t.Errorf("%s: second registration err = %v, want ErrConflict", target, err)
		}
		r, found, err := a.RunnerByName(ctx, target, "spotrunner-i-1")
		if err != nil || !found || r.ID != cfg.RunnerID {
			t.Fatalf("%s: RunnerByName = %+v, %v, %v", target, r, found, err)
		}
		if diff := cmp.Diff([]string{"self-hosted", "spotrunner/linux-x64"}, r.Labels); diff != "" {
			t.Errorf("%s: labels (-want +got):\n%s", target, diff)
		}
		for range 2 {
			if err := a.DeleteRunner(ctx, target, r.ID); err != nil {
				t.Errorf("%s: DeleteRunner: %v", target, err)
			}
		}
		if _, found, _ := a.RunnerByName(ctx, target, "spotrunner-i-1"); found {
			t.Errorf("%s: runner still there after delete", target)
		}
	}
	tokens := 0
	for _, c := range s.Calls() {
		if strings.HasSuffix(c.Path, "/access_tokens") {
			tokens++
		}
	}
	if tokens != 2 {
		t.Errorf("%d token exchanges, want 2 (one per installation, then cached)", tokens)
	}
}

// TestUniqueJWTs (simulator): twenty concurrent first calls for twenty installations sign twenty
// app JWTs within the same second; every one differs (the jti), which stock ghinstallation does
// not guarantee.
func TestUniqueJWTs(t *testing.T) {
	t.Parallel()
	s, base := ghessim.Start(t, ghessim.Options{AppID: appID, AppPublicKey: &appKey().PublicKey})
	a, err := New(Config{ServerURL: base, AppID: appID}, staticKey)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		s.AddInstallation(int64(100+i), "org"+string(rune('a'+i)), "Organization")
		wg.Go(func() {
			if err := a.Check(context.Background(), int64(100+i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	jwts := s.JWTs()
	seen := map[string]bool{}
	for _, j := range jwts {
		if seen[j] {
			t.Fatalf("duplicate app JWT among %d", len(jwts))
		}
		seen[j] = true
	}
	if len(jwts) != 20 {
		t.Errorf("%d JWTs, want 20", len(jwts))
	}
}

// TestErrorClasses (simulator with injected faults): each GitHub failure maps to the sentinel the
// provisioner classifies on.
func TestErrorClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		fault  func(s *ghessim.Server)
		target Target
		want   error
	}{
		{"500", func(s *ghessim.Server) { s.Fail("POST /orgs/*/actions/runners/generate-jitconfig", 1, 500) }, Target{InstallationID: 11, Owner: "acme"}, ErrUnavailable},
		{"502", func(s *ghessim.Server) { s.Fail("POST /orgs/*/actions/runners/generate-jitconfig", 1, 502) }, Target{InstallationID: 11, Owner: "acme"}, ErrUnavailable},
		{"403 rate limit", func(s *ghessim.Server) {
			s.Fail("POST /orgs/*/actions/runners/generate-jitconfig", 1, 403, ghessim.WithRateLimit())
		}, Target{InstallationID: 11, Owner: "acme"}, ErrRateLimited},
		{"403 forbidden", func(s *ghessim.Server) { s.Fail("POST /orgs/*/actions/runners/generate-jitconfig", 1, 403) }, Target{InstallationID: 11, Owner: "acme"}, ErrForbidden},
		{"404 installation", func(*ghessim.Server) {}, Target{InstallationID: 999, Owner: "acme"}, ErrNotInstalled},
		{"422", func(s *ghessim.Server) { s.Fail("POST /orgs/*/actions/runners/generate-jitconfig", 1, 422) }, Target{InstallationID: 11, Owner: "acme"}, ErrInvalid},
		{"token 500", func(s *ghessim.Server) { s.Fail("POST /app/installations/*/access_tokens", 1, 500) }, Target{InstallationID: 11, Owner: "acme"}, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, a := sim(t)
			tt.fault(s)
			_, err := a.GenerateJITConfig(context.Background(), tt.target, "spotrunner-i-2", []string{"self-hosted"}, 1)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestCABundle (simulator behind TLS): with the server's certificate as the CA bundle the client
// connects; without it TLS fails. A bundle with no certificate is refused at New.
func TestCABundle(t *testing.T) {
	t.Parallel()
	s, base, ca := ghessim.StartTLS(t, ghessim.Options{AppID: appID, AppPublicKey: &appKey().PublicKey})
	s.AddInstallation(11, "acme", "Organization")

	with, err := New(Config{ServerURL: base, AppID: appID, CABundle: ca}, staticKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := with.Check(context.Background(), 11); err != nil {
		t.Errorf("with the CA bundle: %v", err)
	}
	without, _ := New(Config{ServerURL: base, AppID: appID}, staticKey)
	if err := without.Check(context.Background(), 11); !errors.Is(err, ErrTLS) {
		t.Errorf("without the CA bundle: err = %v, want ErrTLS", err)
	}
	if _, err := New(Config{ServerURL: base, AppID: appID, CABundle: []byte("junk")}, staticKey); err == nil {
		t.Error("a CA bundle without certificates was accepted")
	}
}

// TestKeyErrors: a missing key is the source's error; a malformed one is ErrBadPrivateKey and the
// error text quotes none of it.
func TestKeyErrors(t *testing.T) {
	t.Parallel()
	missing := errors.New("secret not found")
	a, _ := New(Config{ServerURL: "https://ghes.example.com", AppID: 1}, func(context.Context) ([]byte, error) { return nil, missing })
	if err := a.Check(context.Background(), 1); !errors.Is(err, missing) {
		t.Errorf("missing key: err = %v", err)
	}
	bad := []byte("-----BEGIN RSA PRIVATE KEY-----\nTOTALLYSECRETBYTES\n-----END RSA PRIVATE KEY-----\n")
	a, _ = New(Config{ServerURL: "https://ghes.example.com", AppID: 1}, func(context.Context) ([]byte, error) { return bad, nil })
	err := a.Check(context.Background(), 1)
	if !errors.Is(err, ErrBadPrivateKey) || strings.Contains(err.Error(), "TOTALLYSECRET") {
		t.Errorf("bad key: err = %v", err)
	}
}
