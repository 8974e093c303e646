package ghessim

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
	"github.com/google/go-cmp/cmp"
)

// TestAppJWT: no fixtures. Each case sends GET /app/installations/11 with one app JWT; GitHub's
// rules must decide the status and message (RS256 with the key of the app iss names, iss an
// integer naming a known app, integer iat not in the future, exp in the future and at most 10
// minutes after iat), and every JWT must be recorded.
func TestAppJWT(t *testing.T) {
	t.Parallel()
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tests := []struct {
		name string
		auth func(t *testing.T) string
		want int
		msg  string // GitHub's message, for a refusal
	}{
		{"valid", func(t *testing.T) string { return "Bearer " + appJWT(t, appKey(), nil) }, http.StatusOK, ""},
		{"iss as a number", func(t *testing.T) string {
			return "Bearer " + appJWT(t, appKey(), func(c jwt.MapClaims) { c["iss"] = testAppID })
		}, http.StatusOK, ""},
		{"ten minutes exactly", func(t *testing.T) string {
			return "Bearer " + appJWT(t, appKey(), func(c jwt.MapClaims) {
				c["exp"] = now.Add(9 * time.Minute).Unix()
				c["iat"] = now.Add(-time.Minute).Unix()
			})
		}, http.StatusOK, ""},
		{"wrong key", func(t *testing.T) string { return "Bearer " + appJWT(t, otherKey, nil) }, http.StatusUnauthorized, msgUndecodable},
		{"iss of an unknown app", func(t *testing.T) string {
			return "Bearer " + appJWT(t, appKey(), func(c jwt.MapClaims) { c["iss"] = "4243" })
		}, http.StatusNotFound, msgAppNotFound},
		{"iss of an unknown app, wrong key", func(t *testing.T) string {
			return "Bearer " + appJWT(t, otherKey, func(c jwt.MapClaims) { c["iss"] = 4243 })
		}, http.StatusNotFound, msgAppNotFound},
		{"iss not a number", func(t *testing.T) string {
			return "Bearer " + appJWT(t, appKey(), func(c jwt.MapClaims) { c["iss"] = "Iv1.spot" })
		}, http.StatusUnauthorized, msgIssNotInteger},
		{"no iss", func(t *testing.T) string {
			return "Bearer " + appJWT(t, appKey(), func(c jwt.MapClaims) { delete(c, "iss") })
		}, http.StatusUnauthorized, msgIssNotInteger},
		{"expired", func(t *testing.T) string {
			return "Bearer " + appJWT(t, appKey(), func(c jwt.MapClaims) {
				c["iat"], c["exp"] = now.Add(-5*time.Minute).Unix(), now.Add(-time.Minute).Unix()
			})
		}, http.StatusUnauthorized, msgExpNotFuture},
		{"exp too far", func(t *testing.T) string {
			return "Bearer " + appJWT(t, appKey(), func(c jwt.MapClaims) { c["exp"] = now.Add(11 * time.Minute).Unix() })
		}, http.StatusUnauthorized, msgExpTooFarAhead},
		{"no exp", func(t *testing.T) string {
			return "Bearer " + appJWT(t, appKey(), func(c jwt.MapClaims) { delete(c, "exp") })
		}, http.StatusUnauthorized, msgExpNotFuture},
		{"iat in the future", func(t *testing.T) string {
			return "Bearer " + appJWT(t, appKey(), func(c jwt.MapClaims) { c["iat"] = now.Add(5 * time.Minute).Unix() })
		}, http.StatusUnauthorized, msgIatNotPast},
		{"fractional iat", func(t *testing.T) string {
			return "Bearer " + appJWT(t, appKey(), func(c jwt.MapClaims) { c["iat"] = float64(now.Unix()) - 0.5 })
		}, http.StatusUnauthorized, msgIatNotPast},
		{"HS256 signed with the public modulus", func(t *testing.T) string {
			signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
				"iss": "4242", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
			}).SignedString(appKey().N.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			return "Bearer " + signed
		}, http.StatusUnauthorized, msgUndecodable},
		{"not a JWT", func(*testing.T) string { return "Bearer ghs_notajwt" }, http.StatusUnauthorized, msgUndecodable},
		{"no Authorization", func(*testing.T) string { return "" }, http.StatusUnauthorized, msgUndecodable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, base := startSim(t)
			auth := tt.auth(t)
			got := call(t, "GET", base+"/api/v3/app/installations/11", auth, nil)
			if got.status != tt.want {
				t.Errorf("status = %d, want %d; body %s", got.status, tt.want, got.body)
			}
			if tt.msg != "" {
				var e basicError
				got.decode(t, &e)
				if diff := cmp.Diff(basicError{Message: tt.msg, DocumentationURL: docsURL, Status: strconv.Itoa(tt.want)}, e); diff != "" {
					t.Errorf("error body (-want +got):\n%s", diff)
				}
			}
			var wantJWTs []string
			if raw, ok := strings.CutPrefix(auth, "Bearer "); ok && raw != "ghs_notajwt" {
				wantJWTs = []string{raw}
			}
			if diff := cmp.Diff(wantJWTs, s.JWTs()); diff != "" {
				t.Errorf("JWTs() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInstallationToken: no fixtures. The org installation (acme, 11) and the user installation
// (octocat, 12) each get a token; each case uses a credential on a runner route and must get
// GitHub's answer: 200 for the installation's own account, 401 for bad or expired tokens, 404 for
// another account's resources or an /orgs route on a user.
func TestInstallationToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		path string
		auth func(orgTok, userTok string) string
		// advance moves the server's clock before the call.
		advance time.Duration
		want    int
	}{
		{"org token on its org", "/orgs/acme/actions/runners", func(o, _ string) string { return "token " + o }, 0, http.StatusOK},
		{"Bearer scheme", "/orgs/acme/actions/runners", func(o, _ string) string { return "Bearer " + o }, 0, http.StatusOK},
		{"login case-insensitive", "/orgs/ACME/actions/runners", func(o, _ string) string { return "token " + o }, 0, http.StatusOK},
		{"org token on its repo", "/repos/acme/app/actions/runners", func(o, _ string) string { return "token " + o }, 0, http.StatusOK},
		{"user token on its repo", "/repos/octocat/tools/actions/runners", func(_, u string) string { return "token " + u }, 0, http.StatusOK},
		{"org token on another owner", "/repos/octocat/tools/actions/runners", func(o, _ string) string { return "token " + o }, 0, http.StatusNotFound},
		{"user token on /orgs", "/orgs/octocat/actions/runners", func(_, u string) string { return "token " + u }, 0, http.StatusNotFound},
		{"unknown repo", "/repos/acme/nope/actions/runners", func(o, _ string) string { return "token " + o }, 0, http.StatusNotFound},
		{"unknown token", "/orgs/acme/actions/runners", func(string, string) string { return "token ghs_madeup" }, 0, http.StatusUnauthorized},
		{"app JWT instead", "/orgs/acme/actions/runners", func(string, string) string { return "Bearer " + appJWT(t, appKey(), nil) }, 0, http.StatusUnauthorized},
		{"none", "/orgs/acme/actions/runners", func(string, string) string { return "" }, 0, http.StatusUnauthorized},
		{"59 minutes old", "/orgs/acme/actions/runners", func(o, _ string) string { return "token " + o }, 59 * time.Minute, http.StatusOK},
		{"expired after an hour", "/orgs/acme/actions/runners", func(o, _ string) string { return "token " + o }, time.Hour + time.Second, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, base := startSim(t)
			orgTok := installationToken(t, base, strconv.Itoa(testOrgInst))
			userTok := installationToken(t, base, strconv.Itoa(testUsrInst))
			s.skew.Store(int64(tt.advance))
			got := call(t, "GET", base+"/api/v3"+tt.path, tt.auth(orgTok, userTok), nil)
			if got.status != tt.want {
				t.Errorf("status = %d, want %d; body %s", got.status, tt.want, got.body)
			}
		})
	}
}

// TestAccessToken: no fixtures. The access_tokens route must answer 201 with a ghs_ token that
// expires in an hour, 404 for an unknown installation, and narrow permissions when asked.
func TestAccessToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		id        string
		body      any
		want      int
		wantPerms map[string]string
	}{
		{"default permissions", "11", nil, http.StatusCreated, appPermissions},
		{"null body, as ghinstallation sends", "11", rawJSON("null"), http.StatusCreated, appPermissions},
		{"narrowed", "12", map[string]any{"permissions": map[string]string{"metadata": "read"}}, http.StatusCreated, map[string]string{"metadata": "read"}},
		{"scoped to repositories", "11", map[string]any{"repositories": []string{"app"}}, http.StatusUnprocessableEntity, nil},
		{"unknown installation", "99", nil, http.StatusNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, base := startSim(t)
			got := call(t, "POST", base+"/api/v3/app/installations/"+tt.id+"/access_tokens", "Bearer "+appJWT(t, appKey(), nil), tt.body)
			if got.status != tt.want {
				t.Fatalf("status = %d, want %d; body %s", got.status, tt.want, got.body)
			}
			if tt.want != http.StatusCreated {
				return
			}
			var tok struct {
				Token       string
				ExpiresAt   time.Time `json:"expires_at"`
				Permissions map[string]string
			}
			got.decode(t, &tok)
			if len(tok.Token) != len("ghs_")+36 || tok.Token[:4] != "ghs_" {
				t.Errorf("token %q is not ghs_ and 36 characters", tok.Token)
			}
			if d := time.Until(tok.ExpiresAt); d < 59*time.Minute || d > time.Hour {
				t.Errorf("expires_at %v is not an hour ahead", tok.ExpiresAt)
			}
			if diff := cmp.Diff(tt.wantPerms, tok.Permissions); diff != "" {
				t.Errorf("permissions (-want +got):\n%s", diff)
			}
		})
	}
}
