package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/secrets"
	"github.com/spotrunner/spotrunner/libs/state"
)

var update = flag.Bool("update", false, "rewrite the golden status documents in testdata/")

func ptr(s string) *string { return &s }

// TestOverall: the document's status from its parts.
func TestOverall(t *testing.T) {
	t.Parallel()
	ok := GitHub{Status: githubConnected}
	ready := Preset{Name: "a", Status: "ready", AMIID: ptr("ami-1")}
	tests := []struct {
		name string
		doc  Document
		want string
	}{
		{"every preset ready", Document{Configuration: Configuration{PrivateKeyConfigured: true}, GitHub: ok, Presets: []Preset{ready, ready}}, "ready"},
		{"first build running", Document{Configuration: Configuration{PrivateKeyConfigured: true}, GitHub: ok, Presets: []Preset{ready, {Name: "b", Status: "building"}}}, "building"},
		{"rebuild running", Document{Configuration: Configuration{PrivateKeyConfigured: true}, GitHub: ok, Presets: []Preset{{Name: "b", Status: "building", AMIID: ptr("ami-2")}}}, "building"},
		{"a preset failed", Document{Configuration: Configuration{PrivateKeyConfigured: true}, GitHub: ok, Presets: []Preset{ready, {Name: "b", Status: "failed", AMIID: ptr("ami-2")}}}, "degraded"},
		{"failed beats building", Document{Configuration: Configuration{PrivateKeyConfigured: true}, GitHub: ok, Presets: []Preset{{Name: "a", Status: "building"}, {Name: "b", Status: "failed"}}}, "degraded"},
		{"ready without an AMI", Document{Configuration: Configuration{PrivateKeyConfigured: true}, GitHub: ok, Presets: []Preset{{Name: "a", Status: "ready"}}}, "degraded"},
		{"no private key", Document{Configuration: Configuration{PrivateKeyConfigured: false}, GitHub: ok, Presets: []Preset{ready}}, "degraded"},
		{"GitHub unreachable", Document{Configuration: Configuration{PrivateKeyConfigured: true}, GitHub: GitHub{Status: githubError}, Presets: []Preset{ready}}, "degraded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := overall(tt.doc); got != tt.want {
				t.Errorf("overall = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMessage: "1 preset ready, 1 preset building, 1 pending / 2 running" and its rules.
func TestMessage(t *testing.T) {
	t.Parallel()
	p := func(statuses ...string) []Preset {
		var out []Preset
		for _, s := range statuses {
			out = append(out, Preset{Status: s})
		}
		return out
	}
	tests := []struct {
		name    string
		presets []Preset
		runners Runners
		want    string
	}{
		{"the README's example", p("ready", "building"), Runners{Pending: 1, Running: 2}, "1 preset ready, 1 preset building, 1 pending / 2 running"},
		{"plural", p("ready", "ready", "failed"), Runners{}, "2 presets ready, 1 preset failed"},
		{"all three runner parts", p("ready"), Runners{Pending: 3, Provisioning: 1, Running: 1}, "1 preset ready, 3 pending / 1 provisioning / 1 running"},
		{"only provisioning", p("building", "building"), Runners{Provisioning: 2}, "2 presets building, 2 provisioning"},
		{"order ready, building, failed whatever the presets' order", p("failed", "building", "ready"), Runners{}, "1 preset ready, 1 preset building, 1 preset failed"},
		{"nothing", nil, Runners{}, "no presets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := message(Document{Presets: tt.presets, Runners: tt.runners}); got != tt.want {
				t.Errorf("message = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestActivity: the last 24 hours are the current hour and the 23 before; the last hour adds the
// previous hour's share still within 60 minutes.
func TestActivity(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 10, 45, 0, 0, time.UTC) // 15 minutes of the previous hour count
	h := func(hoursAgo, c, f int) state.Hour {
		return state.Hour{Start: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC).Add(-time.Duration(hoursAgo) * time.Hour), Completed: c, Failed: f}
	}
	got := activity([]state.Hour{h(24, 100, 100), h(23, 1, 1), h(5, 10, 0), h(1, 8, 4), h(0, 3, 0)}, now)
	want := RecentActivity{LastHour: Activity{Completed: 3 + 2, Failed: 1}, Last24Hours: Activity{Completed: 1 + 10 + 8 + 3, Failed: 1 + 4}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// fakeStore is a state table with fixed contents.
type fakeStore struct {
	presets []state.PresetImage
	counts  state.Counts
	hours   []state.Hour
	err     error
}

func (f fakeStore) PresetImages(context.Context) ([]state.PresetImage, error) {
	return f.presets, f.err
}
func (f fakeStore) CountPhases(context.Context) (state.Counts, error) { return f.counts, f.err }
func (f fakeStore) Activity(context.Context, time.Time, time.Time) ([]state.Hour, error) {
	return f.hours, f.err
}

type fakeKey struct {
	pem []byte
	err error
}

func (k fakeKey) Current(context.Context) ([]byte, error) { return k.pem, k.err }

type fakeApp struct {
	info githubapp.AppInfo
	err  error
}

func (a fakeApp) Describe(context.Context) (githubapp.AppInfo, error) { return a.info, a.err }

// TestGoldenDocuments: the whole document for a handful of worlds, byte for byte against
// testdata/<name>.golden.json (go test ./services/status -run TestGoldenDocuments -update).
func TestGoldenDocuments(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 27, 12, 30, 0, 0, time.UTC)
	updated := time.Date(2026, 1, 27, 12, 0, 0, 0, time.UTC)
	connected := fakeApp{info: githubapp.AppInfo{ID: 1, Slug: "spot-runner", Name: "Spot Runner"}}
	key := fakeKey{pem: testKeyPEM(t)}
	tests := []struct {
		name  string
		store fakeStore
		key   fakeKey
		app   fakeApp
	}{
		{name: "readme", key: key, app: connected, store: fakeStore{
			presets: []state.PresetImage{
				{Name: "linux-x64", Status: "ready", AMIID: "ami-12345678", UpdatedAt: updated},
				{Name: "linux-arm64", Status: "building", UpdatedAt: updated},
			},
			counts: state.Counts{Waiting: 1, Busy: 2},
			hours:  []state.Hour{{Start: now.Truncate(time.Hour), Completed: 5}, {Start: now.Truncate(time.Hour).Add(-5 * time.Hour), Completed: 37, Failed: 1}},
		}},
		{name: "fresh-deploy-no-key", key: fakeKey{err: secrets.ErrNotFound}, app: fakeApp{err: secrets.ErrNotFound}, store: fakeStore{
			presets: []state.PresetImage{{Name: "linux-x64", Status: "building", UpdatedAt: updated}},
		}},
		{name: "failed-rebuild-github-down", key: key, app: fakeApp{err: githubapp.ErrUnreachable}, store: fakeStore{
			presets: []state.PresetImage{
				{Name: "linux-x64", Status: "failed", AMIID: "ami-12345678", Reason: "build 1.0.1/4: tests failed", UpdatedAt: updated},
			},
			counts: state.Counts{Waiting: 2, Idle: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &Handler{
				store: tt.store, keys: tt.key, presets: []string{"linux-x64", "linux-arm64"}, now: func() time.Time { return now },
				github: &githubCheck{app: tt.app, host: "ghes.example.com", timeout: 800 * time.Millisecond, okTTL: time.Minute, errTTL: time.Second, now: func() time.Time { return now }},
			}
			if tt.name != "readme" {
				h.presets = []string{"linux-x64"}
			}
			resp, _ := h.Handle(context.Background(), events.APIGatewayV2HTTPRequest{})
			if resp.StatusCode != 200 || resp.Headers["Cache-Control"] != "no-store" {
				t.Fatalf("answer %d %v", resp.StatusCode, resp.Headers)
			}
			var pretty json.RawMessage = []byte(resp.Body)
			got, _ := json.MarshalIndent(pretty, "", "  ")
			path := filepath.Join("testdata", tt.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)+"\n"); diff != "" {
				t.Errorf("document (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStateUnavailable: a state table that cannot be read is a 503 with a short body.
func TestStateUnavailable(t *testing.T) {
	t.Parallel()
	h := &Handler{store: fakeStore{err: errors.New("dial tcp: connection refused to dynamodb")}, keys: fakeKey{pem: testKeyPEM(t)},
		github: &githubCheck{app: fakeApp{}, timeout: time.Second, now: time.Now}, now: time.Now}
	resp, _ := h.Handle(context.Background(), events.APIGatewayV2HTTPRequest{})
	if resp.StatusCode != 503 || resp.Body != `{"message":"state temporarily unavailable","status":"error"}` {
		t.Errorf("answer %d %s", resp.StatusCode, resp.Body)
	}
}
