package instancesim

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestIMDS asks the metadata double of one instance (id i-0abc, region eu-west-1, three tags)
// what the bootstrap asks, and what it must refuse: a token only with a TTL, every GET only with
// the token (401 as EC2 answers with IMDSv2 required), 404 for what it does not have.
func TestIMDS(t *testing.T) {
	t.Parallel()
	m := newIMDS("i-0abc", "eu-west-1", map[string]string{
		"spotrunner:managed": "true", "spotrunner:deployment": "SpotRunnerStack", "Name": "spotrunner",
	})
	tests := []struct {
		name, method, path string
		ttl                string
		token              string // "good" for the double's token, else sent as is
		wantStatus         int
		wantBody           string
	}{
		{name: "token", method: http.MethodPut, path: "/latest/api/token", ttl: "21600", wantStatus: 200, wantBody: m.token},
		{name: "token without TTL", method: http.MethodPut, path: "/latest/api/token", wantStatus: 400},
		{name: "token with a TTL too long", method: http.MethodPut, path: "/latest/api/token", ttl: "21601", wantStatus: 400},
		{name: "token by GET", method: http.MethodGet, path: "/latest/api/token", ttl: "60", wantStatus: 405},
		{name: "IMDSv1 GET", method: http.MethodGet, path: "/latest/meta-data/instance-id", wantStatus: 401},
		{name: "wrong token", method: http.MethodGet, path: "/latest/meta-data/instance-id", token: "AQAEAnope", wantStatus: 401},
		{name: "instance id", method: http.MethodGet, path: "/latest/meta-data/instance-id", token: "good", wantStatus: 200, wantBody: "i-0abc"},
		{name: "region", method: http.MethodGet, path: "/latest/meta-data/placement/region", token: "good", wantStatus: 200, wantBody: "eu-west-1"},
		{name: "tag keys", method: http.MethodGet, path: "/latest/meta-data/tags/instance", token: "good", wantStatus: 200,
			wantBody: "Name\nspotrunner:deployment\nspotrunner:managed"},
		{name: "tag value", method: http.MethodGet, path: "/latest/meta-data/tags/instance/spotrunner:deployment", token: "good", wantStatus: 200, wantBody: "SpotRunnerStack"},
		{name: "missing tag", method: http.MethodGet, path: "/latest/meta-data/tags/instance/spotrunner:idle-minutes", token: "good", wantStatus: 404},
		{name: "outside meta-data", method: http.MethodGet, path: "/latest/user-data", token: "good", wantStatus: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.ttl != "" {
				r.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", tc.ttl)
			}
			switch tc.token {
			case "":
			case "good":
				r.Header.Set("X-aws-ec2-metadata-token", m.token)
			default:
				r.Header.Set("X-aws-ec2-metadata-token", tc.token)
			}
			w := httptest.NewRecorder()
			m.ServeHTTP(w, r)
			if w.Code != tc.wantStatus {
				t.Errorf("status %d, want %d", w.Code, tc.wantStatus)
			}
			if tc.wantStatus == 200 {
				if diff := cmp.Diff(tc.wantBody, w.Body.String()); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
			}
		})
	}
}
