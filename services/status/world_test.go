package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/spotrunner/spotrunner/internal/ghessim"
	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/secrets"
	"github.com/spotrunner/spotrunner/libs/state"
)

const testAppID = 4242

// TestStatusAgainstTheWorld (local world: moto's DynamoDB and Secrets Manager, the GHES
// simulator): the real store, secret and App client behind the handler, for each way the App's
// side can be set up, and what the document says about it. The GitHub call is time-boxed, so
// even the slow simulator is answered within a second.
func TestStatusAgainstTheWorld(t *testing.T) {
	t.Parallel()
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		secret      string // the secret's value; "" for no secret at all
		appID       int64
		down        bool
		slow        bool
		tls         bool
		wantGitHub  string
		wantMessage string
		wantKey     bool
		wantSlug    string
	}{
		{name: "connected", secret: string(testKeyPEM(t)), appID: testAppID, wantGitHub: "connected", wantMessage: "GitHub API authentication successful", wantKey: true, wantSlug: "spot-runner"},
		{name: "wrong key", secret: string(pemOf(otherKey)), appID: testAppID, wantGitHub: "error", wantMessage: "private key belongs to this App", wantKey: true},
		{name: "no key", appID: testAppID, wantGitHub: "error", wantMessage: "private key is not configured"},
		{name: "not a key", secret: "-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n", appID: testAppID, wantGitHub: "error", wantMessage: "not an RSA private key"},
		{name: "wrong App id", secret: string(testKeyPEM(t)), appID: 999, wantGitHub: "error", wantMessage: "GitHubAppId is this App's id", wantKey: true},
		{name: "simulator down", secret: string(testKeyPEM(t)), appID: testAppID, down: true, wantGitHub: "error", wantMessage: "Cannot reach", wantKey: true},
		{name: "slow simulator", secret: string(testKeyPEM(t)), appID: testAppID, slow: true, wantGitHub: "error", wantMessage: "did not answer within 800ms", wantKey: true},
		{name: "untrusted certificate", secret: string(testKeyPEM(t)), appID: testAppID, tls: true, wantGitHub: "error", wantMessage: "TLS failure", wantKey: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := world.AWS(t)
			store := state.New(world.NewDynamoDB(cfg), world.StateTable(t, cfg))
			ctx := context.Background()
			if err := store.PutPresetImage(ctx, state.PresetImage{Name: "linux-x64", Status: "ready", AMIID: "ami-0123456789abcdef0", UpdatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			sm := secretsmanager.NewFromConfig(cfg)
			secretID := world.Name(t, "key")
			if tt.secret != "" {
				// A retry of a create that went through (moto drops keep-alive connections now and
				// then) finds the uniquely named secret there: that is ours.
				var exists *smtypes.ResourceExistsException
				if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(secretID), SecretString: aws.String(tt.secret)}); err != nil && !errors.As(err, &exists) {
					t.Fatal(err)
				}
			}
			keys := secrets.New(sm, time.Minute).Bind(secretID)
			pub := &testKey2().PublicKey
			var base string
			switch {
			case tt.tls:
				_, base, _ = ghessim.StartTLS(t, ghessim.Options{AppID: testAppID, AppPublicKey: pub})
			case tt.down:
				base = "http://127.0.0.1:1"
			default:
				var sim *ghessim.Server
				sim, base = ghessim.Start(t, ghessim.Options{AppID: testAppID, AppPublicKey: pub})
				if tt.slow {
					sim.Fail("GET /app", 5, 200, ghessim.WithDelay(5*time.Second))
				}
			}
			app, err := githubapp.New(githubapp.Config{ServerURL: base, AppID: tt.appID, Timeout: 800 * time.Millisecond}, keys.Current)
			if err != nil {
				t.Fatal(err)
			}
			h := &Handler{store: store, keys: keys, presets: []string{"linux-x64"}, now: time.Now,
				github: newGitHubCheck(app, githubapp.Host(base), 800*time.Millisecond)}
			start := time.Now()
			resp, _ := h.Handle(ctx, events.APIGatewayV2HTTPRequest{})
			if took := time.Since(start); took > time.Second {
				t.Errorf("answered in %s, want under a second", took)
			}
			var d Document
			if err := json.Unmarshal([]byte(resp.Body), &d); err != nil || resp.StatusCode != 200 {
				t.Fatalf("answer %d %s (%v)", resp.StatusCode, resp.Body, err)
			}
			if d.GitHub.Status != tt.wantGitHub || !strings.Contains(d.GitHub.Message, tt.wantMessage) {
				t.Errorf("github %+v, want %s with %q", d.GitHub, tt.wantGitHub, tt.wantMessage)
			}
			if d.Configuration.PrivateKeyConfigured != tt.wantKey {
				t.Errorf("privateKeyConfigured = %v, want %v", d.Configuration.PrivateKeyConfigured, tt.wantKey)
			}
			if got := ""; d.GitHub.AppSlug != nil {
				got = *d.GitHub.AppSlug
				if got != tt.wantSlug {
					t.Errorf("appSlug %q, want %q", got, tt.wantSlug)
				}
			} else if tt.wantSlug != "" {
				t.Errorf("appSlug null, want %q", tt.wantSlug)
			}
			wantStatus := "ready"
			if tt.wantGitHub != "connected" || !tt.wantKey {
				wantStatus = "degraded"
			}
			if d.Status != wantStatus {
				t.Errorf("status %q, want %q", d.Status, wantStatus)
			}
			for _, leak := range []string{tt.secret, "BEGIN RSA", secretID} {
				if leak != "" && strings.Contains(resp.Body, leak) {
					t.Errorf("the document carries %q", leak)
				}
			}
		})
	}
}
