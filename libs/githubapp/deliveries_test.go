package githubapp

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/spotrunner/spotrunner/internal/ghessim"
)

// hookReceiver is a webhook receiver on loopback: /ok answers 200, /fail answers 500.
func hookReceiver(t *testing.T) (ok, fail string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ok", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	rc := httptest.NewServer(mux)
	t.Cleanup(rc.Close)
	return rc.URL + "/ok", rc.URL + "/fail"
}

// otherAppKey is the key of another App.
func otherAppKey(context.Context) ([]byte, error) {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(otherKey())}), nil
}

// deliveryLists counts the GET /app/hook/deliveries requests s answered, waiting up to a second
// for at least atLeast of them: the simulator records a call just after its answer is written.
func deliveryLists(s *ghessim.Server, atLeast int) int {
	for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		n := 0
		for _, c := range s.Calls() {
			if c.Method == http.MethodGet && c.Path == "/app/hook/deliveries" {
				n++
			}
		}
		if n >= atLeast || time.Now().After(deadline) {
			return n
		}
	}
}

// TestDeliveries (simulator): fixtures, in the order sent: 110 queued workflow_job webhooks of job
// 1 (every tenth refused with 500: "old"); then, from the next second on ("since"), a ping refused,
// an in_progress refused, a completed taken, and the App's redelivery of the refused in_progress
// (refused again: same receiver). Redeliver of the refused one is accepted. Since the start of
// time, all 114 come back newest first through two pages; since "since", exactly the four recent
// ones (the redelivery with the GUID of its original) from one page; since a time to come, none,
// from one page.
func TestDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, a := sim(t)
	ok, fail := hookReceiver(t)
	// A job that ran, so that every action can be sent for it.
	s.AddJob(ghessim.Job{ID: 1, RunID: 2, Owner: "acme", Repo: "app", Labels: []string{"self-hosted"},
		Status: "completed", Conclusion: "success", RunnerName: "spotrunner-i-1", RunnerID: 5})
	send := func(url, action string) string {
		t.Helper()
		guid, _, _ := s.SendWorkflowJob(ctx, url, 1, action) // a refusal is recorded, not an error here
		if guid == "" {
			t.Fatalf("send %s to %s: no delivery", action, url)
		}
		return guid
	}
	for i := range 110 {
		url := ok
		if i%10 == 0 {
			url = fail
		}
		send(url, "queued")
	}
	since := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(since) + 10*time.Millisecond) // GitHub's delivered_at has whole seconds
	ping, _, _ := s.SendPing(ctx, fail)
	refused := send(fail, "in_progress")
	taken := send(ok, "completed")

	found, err := a.Deliveries(ctx, since)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 3 || found[1].GUID != refused {
		t.Fatalf("before the redelivery: %+v, want completed, refused in_progress, ping (newest first)", found)
	}
	if err := a.Redeliver(ctx, found[1].ID); err != nil {
		t.Fatalf("Redeliver: %v", err)
	}

	ignore := cmpopts.IgnoreFields(Delivery{}, "ID", "DeliveredAt")
	recent := []Delivery{
		{GUID: refused, Event: "workflow_job", Action: "in_progress", StatusCode: 500, Redelivery: true},
		{GUID: taken, Event: "workflow_job", Action: "completed", StatusCode: 200},
		{GUID: refused, Event: "workflow_job", Action: "in_progress", StatusCode: 500},
		{GUID: ping, Event: "ping", StatusCode: 500},
	}
	tests := []struct {
		name      string
		since     time.Time
		want      []Delivery // nil: only the count is checked
		wantCount int
		wantLists int // GET requests
	}{
		{name: "since the start of time", since: time.Time{}, wantCount: 114, wantLists: 2},
		{name: "since the recent ones", since: since, want: recent, wantCount: 4, wantLists: 1},
		{name: "since a time to come", since: time.Now().Add(time.Hour), want: []Delivery{}, wantLists: 1},
	}
	seen := deliveryLists(s, 1) // the fixture's one
	for _, tt := range tests {
		// Not parallel: each case counts the list requests it caused.
		t.Run(tt.name, func(t *testing.T) {
			before := deliveryLists(s, seen)
			got, err := a.Deliveries(ctx, tt.since)
			if err != nil {
				t.Fatal(err)
			}
			seen = deliveryLists(s, before+tt.wantLists)
			time.Sleep(20 * time.Millisecond) // a request too many would show by now
			if n := deliveryLists(s, 0) - before; n != tt.wantLists {
				t.Errorf("%d list requests, want %d", n, tt.wantLists)
			}
			if len(got) != tt.wantCount {
				t.Errorf("%d deliveries, want %d", len(got), tt.wantCount)
			}
			if tt.want != nil {
				if got == nil {
					got = []Delivery{}
				}
				if diff := cmp.Diff(tt.want, got, ignore); diff != "" {
					t.Errorf("deliveries (-want +got):\n%s", diff)
				}
			}
			for i, d := range got {
				if d.ID == 0 || d.DeliveredAt.Before(tt.since) || (i > 0 && d.ID >= got[i-1].ID) {
					t.Errorf("delivery %d: id %d at %s: want an id, newest first, not before %s", i, d.ID, d.DeliveredAt, tt.since)
				}
			}
		})
	}
}

// TestDeliveriesErrors (simulator with injected faults, or another App's key): listing and
// redelivering fail with the sentinel a caller classifies on; nothing is redelivered.
func TestDeliveriesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault func(s *ghessim.Server)
		key   KeySource
		call  string // "list" or "redeliver"
		id    int64  // delivery redelivered; default: a refused delivery of the fixture
		want  error
	}{
		{name: "list, GitHub failing", fault: func(s *ghessim.Server) { s.Fail("GET /app/hook/deliveries", 1, 503) }, call: "list", want: ErrUnavailable},
		{name: "list, rate limited", fault: func(s *ghessim.Server) { s.Fail("GET /app/hook/deliveries", 1, 403, ghessim.WithRateLimit()) }, call: "list", want: ErrRateLimited},
		{name: "list, key of another app", key: otherAppKey, call: "list", want: ErrUnauthorized},
		{name: "redeliver, GitHub failing", fault: func(s *ghessim.Server) { s.Fail("POST /app/hook/deliveries/*/attempts", 1, 502) }, call: "redeliver", want: ErrUnavailable},
		{name: "redeliver, no such delivery", call: "redeliver", id: 999999, want: ErrNotFound},
		{name: "redeliver, key of another app", key: otherAppKey, call: "redeliver", want: ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, a := sim(t)
			_, fail := hookReceiver(t)
			s.AddJob(ghessim.Job{ID: 1, RunID: 2, Owner: "acme", Repo: "app", Labels: []string{"self-hosted"}})
			if _, _, err := s.SendWorkflowJob(ctx, fail, 1, "queued"); err != nil {
				t.Fatal(err)
			}
			found, err := a.Deliveries(ctx, time.Time{})
			if err != nil || len(found) != 1 {
				t.Fatalf("fixture: %+v, %v", found, err)
			}
			if tt.key != nil {
				if a, err = New(a.cfg, tt.key); err != nil {
					t.Fatal(err)
				}
			}
			if tt.fault != nil {
				tt.fault(s)
			}
			if tt.call == "list" {
				_, err = a.Deliveries(ctx, time.Time{})
			} else {
				id := tt.id
				if id == 0 {
					id = found[0].ID
				}
				err = a.Redeliver(ctx, id)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			for _, c := range s.Calls() {
				if c.Method == http.MethodPost && c.Status == http.StatusAccepted {
					t.Errorf("redelivered despite the failure: %+v", c)
				}
			}
		})
	}
}
