package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/ghessim"
	"github.com/spotrunner/spotrunner/libs/githubapp"
)

// missedFixtures are the deliveries sendMissedFixtures makes, each with what missedWebhooks must do
// to it when it is of the last hour.
var missedFixtures = []struct{ name, receiver, then string }{
	{"refused", "/refuse", "redelivered once"},                             // workflow_job answered 500
	{"unreachable", "closed", "redelivered once"},                          // nobody listening: GitHub records 502
	{"bad request", "/bad", "redelivered once"},                            // answered 400
	{"retried and refused again", "/refuse", "redelivered once"},           // a manual redelivery failed too: the original is redelivered, not the retry
	{"ping refused", "/refuse", "left: not workflow_job"},                  // a failed ping
	{"taken on a manual redelivery", "/flaky", "left: its GUID was taken"}, // refused, then redelivered by hand and taken
	{"taken", "/ok", "left: delivered"},                                    // answered 200
}

// wantRedelivered are the fixtures missedWebhooks redelivers, by name, sorted.
var wantRedelivered = func() []string {
	var out []string
	for _, f := range missedFixtures {
		if f.then == "redelivered once" {
			out = append(out, f.name)
		}
	}
	sort.Strings(out)
	return out
}()

// sendMissedFixtures sends missedFixtures through r.sim to receivers on loopback, makes the manual
// redeliveries they name, and returns the fixture of each original delivery id.
func sendMissedFixtures(t *testing.T, r *rig) map[int64]string {
	t.Helper()
	ctx := context.Background()
	var (
		mu       sync.Mutex
		attempts = map[string]int{} // by X-GitHub-Delivery
	)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ok", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /refuse", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	mux.HandleFunc("POST /bad", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) })
	mux.HandleFunc("POST /flaky", func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		guid := req.Header.Get("X-GitHub-Delivery")
		if attempts[guid]++; attempts[guid] == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	rc := httptest.NewServer(mux)
	t.Cleanup(rc.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	byGUID := map[string]string{}
	for i, f := range missedFixtures {
		url := rc.URL + f.receiver
		if f.receiver == "closed" {
			url = closed.URL
		}
		var guid string
		if strings.HasPrefix(f.name, "ping") {
			guid, _, _ = r.sim.SendPing(ctx, url) // a refusal is recorded, not an error here
		} else {
			id := int64(900 + i)
			r.sim.AddJob(ghessim.Job{ID: id, RunID: 1, Owner: "acme", Repo: "app", Labels: []string{"self-hosted", "spotrunner/linux-x64"}})
			guid, _, _ = r.sim.SendWorkflowJob(ctx, url, id, "queued")
		}
		if guid == "" {
			t.Fatalf("fixture %q: not sent", f.name)
		}
		byGUID[guid] = f.name
	}
	originals := func() map[int64]string {
		found, err := r.rp.deliveries.Deliveries(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[int64]string{}
		for _, d := range found {
			if !d.Redelivery {
				out[d.ID] = byGUID[d.GUID]
			}
		}
		return out
	}()
	for id, name := range originals {
		if name == "retried and refused again" || name == "taken on a manual redelivery" {
			if err := r.rp.deliveries.Redeliver(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(originals) != len(missedFixtures) {
		t.Fatalf("fixtures: %d original deliveries, want %d", len(originals), len(missedFixtures))
	}
	if got := redeliveredSince(r, originals, 0, 2); len(got) != 2 { // settled before the test counts
		t.Fatalf("fixtures: manual redeliveries %v, want 2", got)
	}
	return originals
}

// redeliveredSince returns, sorted, the fixture of every redelivery GitHub accepted from the
// from-th call on. The simulator records a call just after answering it: this waits up to a second
// for want of them, and a little more for any beyond.
func redeliveredSince(r *rig, fixtures map[int64]string, from, want int) []string {
	collect := func() []string {
		got := []string{}
		for _, c := range r.sim.Calls()[from:] {
			id, prefixed := strings.CutPrefix(c.Path, "/app/hook/deliveries/")
			id, suffixed := strings.CutSuffix(id, "/attempts")
			if !prefixed || !suffixed || c.Method != http.MethodPost || c.Status != http.StatusAccepted {
				continue
			}
			n, _ := strconv.ParseInt(id, 10, 64)
			name, known := fixtures[n]
			if !known {
				name = "delivery " + id + " (not an original)"
			}
			got = append(got, name)
		}
		sort.Strings(got)
		return got
	}
	for deadline := time.Now().Add(time.Second); len(collect()) < want && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // one too many would show by now
	return collect()
}

// runMissedWebhooks runs the step alone, as Run would, n reapers at once over one table and one
// GitHub; it returns the summed counts and the errors.
func runMissedWebhooks(r *rig, n int, dryRun bool) (map[string]int, []error) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		counts = map[string]int{}
		errs   []error
		start  = make(chan struct{})
	)
	for range n {
		rp := *r.rp // a reaper of its own: shared are the table and GitHub
		wg.Go(func() {
			p := &pass{margin: rp.cfg.Margin, dryRun: dryRun, counts: map[string]int{}}
			<-start
			err := rp.missedWebhooks(context.Background(), p)
			mu.Lock()
			defer mu.Unlock()
			for k, v := range p.counts {
				counts[k] += v
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	close(start)
	wg.Wait()
	return counts, errs
}

// TestMissedWebhooks (local world: moto's state table and the GHES simulator): the fixtures are
// missedFixtures, sent to receivers on loopback, each named with what must happen to it; the
// reaper's clock puts them 20 minutes (or 2 hours) in its past. Each case runs the step, then one
// more reaper runs it once afterwards. Compared are the redeliveries GitHub accepted (by
// fixture: a fixture twice is a double redelivery), the step's counts and its error:
//   - one reaper: the four of the last hour redelivered once each; the run afterwards redelivers
//     nothing (their claims hold);
//   - three reapers at once: still once each;
//   - fixtures 2 hours old: nothing, ever;
//   - GitHub failing the list: the step fails with nothing claimed, so the run afterwards
//     redelivers all four;
//   - GitHub failing the first redelivery: the step stops with GitHub's error and gives that
//     claim back, so the run afterwards redelivers all four;
//   - dry run: nothing redelivered, nothing claimed: the run afterwards redelivers all four.
func TestMissedWebhooks(t *testing.T) {
	t.Parallel()
	none := []string{}
	tests := []struct {
		name       string
		ago        time.Duration // the fixtures' age on the reaper's clock
		fault      func(s *ghessim.Server)
		reapers    int // at once; default 1
		dryRun     bool
		want       []string
		wantCounts map[string]int // nil: not compared
		wantErr    error
		wantAfter  []string
	}{
		{name: "one reaper", ago: 20 * time.Minute, want: wantRedelivered,
			wantCounts: map[string]int{"missedWebhooks.redeliver": 4, "missedWebhooks.skipped": 2}, wantAfter: none},
		{name: "three reapers at once", ago: 20 * time.Minute, reapers: 3, want: wantRedelivered,
			wantCounts: map[string]int{"missedWebhooks.redeliver": 4, "missedWebhooks.skipped": 3*2 + 2*4}, wantAfter: none},
		{name: "fixtures 2 hours old", ago: 2 * time.Hour, want: none, wantCounts: map[string]int{}, wantAfter: none},
		{name: "GitHub failing the list", ago: 20 * time.Minute, fault: func(s *ghessim.Server) { s.Fail("GET /app/hook/deliveries", 1, 503) },
			want: none, wantCounts: map[string]int{}, wantErr: githubapp.ErrUnavailable, wantAfter: wantRedelivered},
		{name: "GitHub failing the first redelivery", ago: 20 * time.Minute,
			fault: func(s *ghessim.Server) { s.Fail("POST /app/hook/deliveries/*/attempts", 1, 502) },
			want:  none, wantErr: githubapp.ErrUnavailable, wantAfter: wantRedelivered},
		{name: "dry run", ago: 20 * time.Minute, dryRun: true, want: none,
			wantCounts: map[string]int{"missedWebhooks.would redeliver": 4, "missedWebhooks.skipped": 2}, wantAfter: wantRedelivered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			fixtures := sendMissedFixtures(t, r)
			r.now = time.Now().UTC().Add(tt.ago)
			if tt.fault != nil {
				tt.fault(r.sim)
			}
			from := len(r.sim.Calls())
			counts, errs := runMissedWebhooks(r, max(tt.reapers, 1), tt.dryRun)
			if len(errs) > 1 || (len(errs) == 1) != (tt.wantErr != nil) || len(errs) == 1 && !errors.Is(errs[0], tt.wantErr) {
				t.Errorf("errors %v, want %v", errs, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, redeliveredSince(r, fixtures, from, len(tt.want))); diff != "" {
				t.Errorf("redelivered (-want +got):\n%s", diff)
			}
			if tt.wantCounts != nil {
				if diff := cmp.Diff(tt.wantCounts, counts); diff != "" {
					t.Errorf("counts (-want +got):\n%s", diff)
				}
			}

			from = len(r.sim.Calls())
			if _, errs := runMissedWebhooks(r, 1, false); len(errs) != 0 {
				t.Errorf("run afterwards: %v", errs)
			}
			if diff := cmp.Diff(tt.wantAfter, redeliveredSince(r, fixtures, from, len(tt.wantAfter))); diff != "" {
				t.Errorf("redelivered by the run afterwards (-want +got):\n%s", diff)
			}
		})
	}
}
