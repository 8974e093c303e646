package ghessim

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// deliveryView is the part of a hook-delivery-item the tests compare.
type deliveryView struct {
	GUID       string
	Event      string
	Action     *string
	StatusCode int `json:"status_code"`
	Status     string
	Redelivery bool
}

// TestDeliveries: no fixtures. Three webhooks are sent: a queued workflow_job the receiver takes
// (200), the in_progress one it refuses (500), and one to a receiver that is gone. The deliveries
// routes must list them newest first, page with a cursor, filter by outcome, show one in full,
// and redeliver the refused one (same GUID and body, flagged redelivery) once the receiver is back.
func TestDeliveries(t *testing.T) {
	t.Parallel()
	s, base := startSim(t)
	rc := startReceiver(t, http.StatusOK)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	s.AddJob(Job{ID: 1, RunID: 2, Owner: "acme", Repo: "app", Labels: []string{"self-hosted"}})
	generateRunner(t, base, "orgs/acme", installationToken(t, base, "11"), "r", "self-hosted")
	queued, _, err := s.SendWorkflowJob(t.Context(), rc.url, 1, "queued")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AssignJob(1, "r"); err != nil {
		t.Fatal(err)
	}
	rc.answer(http.StatusInternalServerError)
	refused, status, err := s.SendWorkflowJob(t.Context(), rc.url, 1, "in_progress")
	if err != nil || status != http.StatusInternalServerError {
		t.Fatalf("refused delivery: %d, %v", status, err)
	}
	lost, _, err := s.SendWorkflowJob(t.Context(), gone.URL, 1, "in_progress")
	if err == nil {
		t.Fatal("delivery to a closed receiver succeeded")
	}

	jwt := func() string { return "Bearer " + appJWT(t, appKey(), nil) }
	list := func(query string) ([]deliveryView, string) {
		t.Helper()
		r := call(t, "GET", base+"/api/v3/app/hook/deliveries"+query, jwt(), nil)
		if r.status != http.StatusOK {
			t.Fatalf("list %s: %d %s", query, r.status, r.body)
		}
		var out []deliveryView
		r.decode(t, &out)
		return out, r.header.Get("Link")
	}
	inProgress := ptr("in_progress")
	wantAll := []deliveryView{
		{GUID: lost, Event: "workflow_job", Action: inProgress, StatusCode: 502, Status: "failed to connect"},
		{GUID: refused, Event: "workflow_job", Action: inProgress, StatusCode: 500, Status: "Invalid HTTP Response: 500"},
		{GUID: queued, Event: "workflow_job", Action: ptr("queued"), StatusCode: 200, Status: "OK"},
	}
	got, link := list("")
	if diff := cmp.Diff(wantAll, got); diff != "" || link != "" {
		t.Errorf("list (-want +got):\n%s\nLink %q", diff, link)
	}

	// Paging: two, then the rest through the Link's cursor.
	got, link = list("?per_page=2")
	if diff := cmp.Diff(wantAll[:2], got); diff != "" {
		t.Errorf("page 1 (-want +got):\n%s", diff)
	}
	next, err := url.Parse(strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`))
	if err != nil || next.Query().Get("cursor") == "" {
		t.Fatalf("Link %q has no cursor", link)
	}
	got, link = list("?" + next.RawQuery)
	if diff := cmp.Diff(wantAll[2:], got); diff != "" || link != "" {
		t.Errorf("page 2 (-want +got):\n%s\nLink %q", diff, link)
	}

	got, _ = list("?status=failure")
	if diff := cmp.Diff(wantAll[:2], got); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}

	// One delivery in full: what was sent, and what the receiver said.
	all := listIDs(t, base, jwt())
	r := call(t, "GET", base+"/api/v3/app/hook/deliveries/"+all[refused], jwt(), nil)
	var full struct {
		URL     string
		Request struct {
			Headers map[string]string
			Payload struct{ Action string }
		}
		Response struct{ Payload *string }
	}
	r.decode(t, &full)
	if full.URL != rc.url || full.Request.Headers["X-Github-Event"] != "workflow_job" || full.Request.Payload.Action != "in_progress" ||
		full.Response.Payload == nil || *full.Response.Payload != "thanks" {
		t.Errorf("delivery = %s", r.body)
	}

	// Redelivery of the refused one, now that the receiver is back.
	rc.answer(http.StatusOK)
	if r := call(t, "POST", base+"/api/v3/app/hook/deliveries/"+all[refused]+"/attempts", jwt(), nil); r.status != http.StatusAccepted {
		t.Fatalf("redeliver: %d %s", r.status, r.body)
	}
	got, _ = list("?per_page=1")
	if diff := cmp.Diff([]deliveryView{{GUID: refused, Event: "workflow_job", Action: inProgress, StatusCode: 200, Status: "OK", Redelivery: true}}, got); diff != "" {
		t.Errorf("after redelivery (-want +got):\n%s", diff)
	}
	bodies := rc.all()
	first, again := bodies[1], bodies[len(bodies)-1]
	if again.header.Get("X-GitHub-Delivery") != refused || string(again.body) != string(first.body) {
		t.Errorf("redelivery sent %s %s, want the original GUID %s and body", again.header.Get("X-GitHub-Delivery"), again.body, refused)
	}
	verifySignature(t, again)

	for _, path := range []string{"GET /app/hook/deliveries/999", "POST /app/hook/deliveries/999/attempts"} {
		method, p, _ := strings.Cut(path, " ")
		if r := call(t, method, base+"/api/v3"+p, jwt(), nil); r.status != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, r.status)
		}
	}
}

// listIDs maps each delivery's GUID to its id (the latest delivery of a GUID wins).
func listIDs(t *testing.T, base, auth string) map[string]string {
	t.Helper()
	var items []struct {
		ID   int64
		GUID string
	}
	call(t, "GET", base+"/api/v3/app/hook/deliveries?per_page=100", auth, nil).decode(t, &items)
	out := map[string]string{}
	for i := len(items) - 1; i >= 0; i-- {
		out[items[i].GUID] = strconv.FormatInt(items[i].ID, 10)
	}
	return out
}
