package ghessim

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
)

const (
	testAppID   = 4242
	testSecret  = "webhook-secret"
	testOrg     = "acme"
	testOrgInst = 11
	testUser    = "octocat"
	testUsrInst = 12
)

// appKey is the test app's private key, made once: RSA generation is slow enough to matter when
// every test wants one.
var appKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// startSim starts a simulator with an org installation (acme, repo acme/app) and a user
// installation (octocat, repo octocat/tools).
func startSim(t *testing.T) (*Server, string) {
	t.Helper()
	return startSimAt(t, "")
}

// startSimAt is startSim for a GHES host name ("" for the default).
func startSimAt(t *testing.T, host string) (*Server, string) {
	t.Helper()
	s, base := Start(t, Options{AppID: testAppID, AppPublicKey: &appKey().PublicKey, WebhookSecret: []byte(testSecret), Host: host})
	s.AddInstallation(testOrgInst, testOrg, "Organization")
	s.AddRepo(testOrg, "app", true)
	s.AddInstallation(testUsrInst, testUser, "User")
	s.AddRepo(testUser, "tools", false)
	return s, base
}

// appJWT signs claims the way a GitHub App client does; edit changes them first.
func appJWT(t *testing.T, key *rsa.PrivateKey, edit func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{"iss": "4242", "iat": now.Add(-30 * time.Second).Unix(), "exp": now.Add(2 * time.Minute).Unix()}
	if edit != nil {
		edit(claims)
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// response is what a test request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// rawJSON is a request body sent as is, valid JSON or not.
type rawJSON string

// call sends one request to the simulator; auth is the whole Authorization header ("" for none)
// and body, when not nil, is sent as JSON.
func call(t *testing.T, method, url, auth string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case rawJSON:
		rd = strings.NewReader(string(b))
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// installationToken gets an access token for the installation, as the app client would.
func installationToken(t *testing.T, base string, installationID string) string {
	t.Helper()
	r := call(t, "POST", base+"/api/v3/app/installations/"+installationID+"/access_tokens", "Bearer "+appJWT(t, appKey(), nil), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("access token for installation %s: %d %s", installationID, r.status, r.body)
	}
	var tok struct{ Token string }
	r.decode(t, &tok)
	if !strings.HasPrefix(tok.Token, "ghs_") {
		t.Fatalf("token %q lacks the ghs_ prefix", tok.Token)
	}
	return tok.Token
}

// generateRunner registers a JIT runner through the API and returns the runner's id and config.
func generateRunner(t *testing.T, base, scope, token, name string, labels ...string) (int64, string) {
	t.Helper()
	r := call(t, "POST", base+"/api/v3/"+scope+"/actions/runners/generate-jitconfig", "token "+token,
		map[string]any{"name": name, "runner_group_id": 1, "labels": labels})
	if r.status != http.StatusCreated {
		t.Fatalf("generate-jitconfig %s: %d %s", name, r.status, r.body)
	}
	var out struct {
		Runner           struct{ ID int64 }
		EncodedJITConfig string `json:"encoded_jit_config"`
	}
	r.decode(t, &out)
	return out.Runner.ID, out.EncodedJITConfig
}
