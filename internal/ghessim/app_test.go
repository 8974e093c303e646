package ghessim

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net/http"
	"strconv"
	"testing"

	"github.com/golang-jwt/jwt/v4"
	"github.com/google/go-cmp/cmp"
)

// TestGetApp: no fixtures. A simulator with two installations, with the default app slug and
// name or with its own (and its own host), answers GET /app. With the app's JWT it must describe
// the app from its Options (id, slug, name, URLs on the host, two installations) and give the
// same slug in installations; a JWT of another key, of an unknown app id, or none gets GitHub's
// refusal; an injected fault answers first, then the route serves again.
func TestGetApp(t *testing.T) {
	t.Parallel()
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// app is the part of GitHub's integration the test pins down.
	type app struct {
		ID                 int64  `json:"id"`
		Slug               string `json:"slug"`
		NodeID             string `json:"node_id"`
		Name               string `json:"name"`
		HTMLURL            string `json:"html_url"`
		Owner              struct{ Login string }
		InstallationsCount int `json:"installations_count"`
	}
	node := base64.StdEncoding.EncodeToString([]byte("011:Integration4242"))
	valid := func(t *testing.T) string { return "Bearer " + appJWT(t, appKey(), nil) }
	tests := []struct {
		name  string
		opts  Options
		auth  func(t *testing.T) string
		fault func(s *Server)
		want  int
		app   app    // for 200
		msg   string // for a refusal
	}{
		{name: "defaults", auth: valid, want: http.StatusOK, app: app{
			ID: testAppID, Slug: "spot-runner", NodeID: node, Name: "Spot Runner",
			HTMLURL: "https://ghes.local/github-apps/spot-runner", Owner: struct{ Login string }{"monalisa"}, InstallationsCount: 2,
		}},
		{name: "named", opts: Options{AppSlug: "spot-runner-ci", AppName: "Spot Runner CI", Host: "ghe.example.com"}, auth: valid, want: http.StatusOK, app: app{
			ID: testAppID, Slug: "spot-runner-ci", NodeID: node, Name: "Spot Runner CI",
			HTMLURL: "https://ghe.example.com/github-apps/spot-runner-ci", Owner: struct{ Login string }{"monalisa"}, InstallationsCount: 2,
		}},
		{name: "key of another app", auth: func(t *testing.T) string { return "Bearer " + appJWT(t, otherKey, nil) },
			want: http.StatusUnauthorized, msg: msgUndecodable},
		{name: "unknown app id", auth: func(t *testing.T) string {
			return "Bearer " + appJWT(t, appKey(), func(c jwt.MapClaims) { c["iss"] = "4243" })
		}, want: http.StatusNotFound, msg: msgAppNotFound},
		{name: "installation token", auth: func(*testing.T) string { return "token ghs_madeup" }, want: http.StatusUnauthorized, msg: msgUndecodable},
		{name: "fault", auth: valid, fault: func(s *Server) { s.Fail("GET /app", 1, http.StatusServiceUnavailable) },
			want: http.StatusServiceUnavailable, msg: http.StatusText(http.StatusServiceUnavailable)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := tt.opts
			opts.AppID, opts.AppPublicKey = testAppID, &appKey().PublicKey
			s, base := Start(t, opts)
			s.AddInstallation(testOrgInst, testOrg, "Organization")
			s.AddInstallation(testUsrInst, testUser, "User")
			if tt.fault != nil {
				tt.fault(s)
			}
			got := call(t, "GET", base+"/api/v3/app", tt.auth(t), nil)
			if got.status != tt.want {
				t.Fatalf("status = %d, want %d; body %s", got.status, tt.want, got.body)
			}
			if tt.want != http.StatusOK {
				var e basicError
				got.decode(t, &e)
				if diff := cmp.Diff(basicError{Message: tt.msg, DocumentationURL: docsURL, Status: strconv.Itoa(tt.want)}, e); diff != "" {
					t.Errorf("error body (-want +got):\n%s", diff)
				}
				if tt.fault != nil { // the fault is spent; the route serves again
					if again := call(t, "GET", base+"/api/v3/app", tt.auth(t), nil); again.status != http.StatusOK {
						t.Errorf("after the fault: status %d; body %s", again.status, again.body)
					}
				}
				return
			}
			var a app
			got.decode(t, &a)
			if diff := cmp.Diff(tt.app, a); diff != "" {
				t.Errorf("GET /app (-want +got):\n%s", diff)
			}
			var inst struct {
				AppSlug string `json:"app_slug"`
			}
			call(t, "GET", base+"/api/v3/app/installations/11", tt.auth(t), nil).decode(t, &inst)
			if inst.AppSlug != tt.app.Slug {
				t.Errorf("installation app_slug = %q, want %q", inst.AppSlug, tt.app.Slug)
			}
		})
	}
}
