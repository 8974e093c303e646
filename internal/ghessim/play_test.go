package ghessim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// hook is the part of a workflow_job webhook the play tests compare.
type hook struct {
	Action     string
	Job        int64
	Status     string
	Conclusion string
	RunnerName string
	RunnerID   int64
}

// startPlay starts a simulator (startSim's installations: org acme with repo acme/app, user
// octocat with repo octocat/tools) playing GitHub towards a receiver that answers 200.
func startPlay(t *testing.T, jobDuration time.Duration) (*Server, string, *receiver) {
	t.Helper()
	s, base := startSim(t)
	rc := startReceiver(t, http.StatusOK)
	s.Play(PlayOptions{WebhookURL: rc.url, JobDuration: jobDuration, Log: t.Logf})
	return s, base, rc
}

// hooks returns the workflow_job webhooks rc received, in order of arrival, after checking that
// each is signed with the secret.
func hooks(t *testing.T, rc *receiver) []hook {
	t.Helper()
	var out []hook
	for _, got := range rc.all() {
		verifySignature(t, got)
		var p struct {
			Action      string
			WorkflowJob struct {
				ID         int64
				Status     string
				Conclusion *string
				RunnerName *string `json:"runner_name"`
				RunnerID   *int64  `json:"runner_id"`
			} `json:"workflow_job"`
		}
		if err := json.Unmarshal(got.body, &p); err != nil {
			t.Fatalf("webhook %s: %v", got.body, err)
		}
		h := hook{Action: p.Action, Job: p.WorkflowJob.ID, Status: p.WorkflowJob.Status}
		if p.WorkflowJob.Conclusion != nil {
			h.Conclusion = *p.WorkflowJob.Conclusion
		}
		if p.WorkflowJob.RunnerName != nil {
			h.RunnerName, h.RunnerID = *p.WorkflowJob.RunnerName, *p.WorkflowJob.RunnerID
		}
		out = append(out, h)
	}
	return out
}

// waitHooks waits until rc has received n webhooks, then a little longer for any extra one.
func waitHooks(t *testing.T, rc *receiver, n int) []hook {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(rc.all()) < n && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	return hooks(t, rc)
}

// simCall sends one request to a /_sim endpoint without failing the test, so that goroutines
// may use it.
func simCall(ctx context.Context, method, url, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// sim is simCall for the test goroutine.
func sim(t *testing.T, method, url, body string) response {
	t.Helper()
	status, b, err := simCall(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: status, body: b}
}

// TestPlayJobLifecycle: no fixtures. Job 7 of acme/app is queued; a JIT runner with the job's
// labels, made through the generate-jitconfig route, connects through POST /_sim/runners. The
// receiver must get the queued, in_progress and completed webhooks in that order, signed, the
// last two naming the runner; the runner's long-polls must show its job and the job's success;
// every delivery must be recorded as delivered; and the ephemeral runner must be gone, its
// config refused from then on.
func TestPlayJobLifecycle(t *testing.T) {
	t.Parallel()
	s, base, rc := startPlay(t, 20*time.Millisecond)
	labels := []string{"self-hosted", "spotrunner/small"}
	if err := s.QueueJob(t.Context(), Job{ID: 7, RunID: 70, Owner: "acme", Repo: "app", Name: "build", Labels: labels}); err != nil {
		t.Fatal(err)
	}
	id, cfg := generateRunner(t, base, "orgs/acme", installationToken(t, base, "11"), "i-0abc", labels...)

	r := sim(t, "POST", base+"/_sim/runners", cfg+"\n")
	var online simRunnerJSON
	r.decode(t, &online)
	if diff := cmp.Diff(simRunnerJSON{ID: id, Name: "i-0abc", Labels: labels}, online); r.status != http.StatusCreated || diff != "" {
		t.Fatalf("connect: %d, body (-want +got):\n%s", r.status, diff)
	}
	r = sim(t, "GET", base+"/_sim/runners/i-0abc/job?wait=5", "")
	var job simJobJSON
	r.decode(t, &job)
	wantJob := simJobJSON{ID: 7, RunID: 70, Name: "build", WorkflowName: "CI", Repository: "acme/app", Labels: labels}
	if diff := cmp.Diff(wantJob, job); r.status != http.StatusOK || diff != "" {
		t.Fatalf("job: %d, body (-want +got):\n%s", r.status, diff)
	}
	r = sim(t, "GET", base+"/_sim/runners/i-0abc/done?wait=5", "")
	var done simDoneJSON
	r.decode(t, &done)
	if diff := cmp.Diff(simDoneJSON{ID: 7, Conclusion: "success"}, done); r.status != http.StatusOK || diff != "" {
		t.Fatalf("done: %d, body (-want +got):\n%s", r.status, diff)
	}

	want := []hook{
		{Action: "queued", Job: 7, Status: "queued"},
		{Action: "in_progress", Job: 7, Status: "in_progress", RunnerName: "i-0abc", RunnerID: id},
		{Action: "completed", Job: 7, Status: "completed", Conclusion: "success", RunnerName: "i-0abc", RunnerID: id},
	}
	if diff := cmp.Diff(want, waitHooks(t, rc, len(want))); diff != "" {
		t.Errorf("webhooks (-want +got):\n%s", diff)
	}
	s.mu.Lock()
	for _, d := range s.deliveries {
		if d.statusCode != http.StatusOK || d.url != rc.url {
			t.Errorf("delivery %s %s to %s: %d %s, want 200 to %s", d.event, d.action, d.url, d.statusCode, d.status, rc.url)
		}
	}
	s.mu.Unlock()
	if got := s.Runners(); len(got) != 0 {
		t.Errorf("runners after the job: %+v, want none (ephemeral)", got)
	}
	if got, _ := s.Job(7); got.Status != "completed" || got.Conclusion != "success" || got.RunnerID != id {
		t.Errorf("Job(7) = %+v, want completed, success, on runner %d", got, id)
	}
	// The runner's job stays readable after the runner is gone; its config does not work again.
	if r := sim(t, "GET", base+"/_sim/runners/i-0abc/job", ""); r.status != http.StatusOK {
		t.Errorf("job after the runner was removed: %d %s, want 200", r.status, r.body)
	}
	if r := sim(t, "POST", base+"/_sim/runners", cfg); r.status != http.StatusNotFound {
		t.Errorf("connect after the runner was removed: %d %s, want 404", r.status, r.body)
	}
}

// TestPlayAssignment: no fixtures. In each case jobs are queued in order and one runner comes
// online (or the runner first). The runner must take the oldest job whose labels are a subset
// of its own, case-insensitively, in a repository it may serve, and no other; when none fits it
// must get nothing and the jobs stay queued.
func TestPlayAssignment(t *testing.T) {
	t.Parallel()
	small := []string{"self-hosted", "spotrunner/small"}
	tests := []struct {
		name        string
		scope       string // where the runner is registered
		labels      []string
		jobs        []Job
		runnerFirst bool
		want        int64 // the job the runner takes; 0 for none
	}{
		{name: "same labels", scope: "orgs/acme", labels: small,
			jobs: []Job{{ID: 1, Owner: "acme", Repo: "app", Labels: small}}, want: 1},
		{name: "fewer labels than the runner", scope: "orgs/acme", labels: small,
			jobs: []Job{{ID: 1, Owner: "acme", Repo: "app", Labels: []string{"self-hosted"}}}, want: 1},
		{name: "labels in another case", scope: "orgs/acme", labels: small,
			jobs: []Job{{ID: 1, Owner: "acme", Repo: "app", Labels: []string{"Self-Hosted", "SPOTRUNNER/Small"}}}, want: 1},
		{name: "a label the runner lacks", scope: "orgs/acme", labels: small,
			jobs: []Job{{ID: 1, Owner: "acme", Repo: "app", Labels: []string{"self-hosted", "spotrunner/large"}}}},
		{name: "more labels than the runner", scope: "orgs/acme", labels: []string{"self-hosted"},
			jobs: []Job{{ID: 1, Owner: "acme", Repo: "app", Labels: small}}},
		{name: "oldest fitting job first, one not ours", scope: "orgs/acme", labels: small,
			jobs: []Job{
				{ID: 3, Owner: "acme", Repo: "app", Labels: []string{"self-hosted", "gpu"}},
				{ID: 2, Owner: "acme", Repo: "app", Labels: []string{"self-hosted"}},
				{ID: 1, Owner: "acme", Repo: "app", Labels: small},
			}, want: 2},
		{name: "runner online before the job", scope: "orgs/acme", labels: small, runnerFirst: true,
			jobs: []Job{{ID: 1, Owner: "acme", Repo: "app", Labels: small}}, want: 1},
		{name: "org runner, another repo of the org", scope: "orgs/acme", labels: small,
			jobs: []Job{{ID: 1, Owner: "acme", Repo: "other", Labels: small}}, want: 1},
		{name: "repo runner, its repo", scope: "repos/acme/app", labels: small,
			jobs: []Job{{ID: 1, Owner: "acme", Repo: "app", Labels: small}}, want: 1},
		{name: "repo runner, another repo", scope: "repos/acme/app", labels: small,
			jobs: []Job{{ID: 1, Owner: "acme", Repo: "other", Labels: small}}},
		{name: "runner of another owner", scope: "orgs/acme", labels: small,
			jobs: []Job{{ID: 1, Owner: "octocat", Repo: "tools", Labels: small}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, base, rc := startPlay(t, 0)
			_, cfg := generateRunner(t, base, tt.scope, installationToken(t, base, "11"), "i-1", tt.labels...)
			connect := func() {
				if r := sim(t, "POST", base+"/_sim/runners", cfg); r.status != http.StatusCreated {
					t.Fatalf("connect: %d %s", r.status, r.body)
				}
			}
			if tt.runnerFirst {
				connect()
			}
			for _, j := range tt.jobs {
				if err := s.QueueJob(t.Context(), j); err != nil {
					t.Fatal(err)
				}
			}
			if !tt.runnerFirst {
				connect()
			}

			wait := "5"
			if tt.want == 0 {
				wait = "0.3"
			}
			r := sim(t, "GET", base+"/_sim/runners/i-1/job?wait="+wait, "")
			var got simJobJSON
			if r.status == http.StatusOK {
				r.decode(t, &got)
			}
			if got.ID != tt.want {
				t.Errorf("runner's job: %d %s, want job %d", r.status, r.body, tt.want)
			}
			if tt.want == 0 && r.status != http.StatusNoContent {
				t.Errorf("runner's job: %d, want 204", r.status)
			}
			// Every other job stays queued, and only the taken one is announced as started.
			n := len(tt.jobs)
			if tt.want != 0 {
				n += 2
			}
			var started []int64
			for _, h := range waitHooks(t, rc, n) {
				if h.Action == "in_progress" {
					started = append(started, h.Job)
				}
			}
			if want := slices.DeleteFunc([]int64{tt.want}, func(id int64) bool { return id == 0 }); !slices.Equal(want, started) {
				t.Errorf("in_progress webhooks for jobs %v, want %v", started, want)
			}
			for _, j := range tt.jobs {
				if got, _ := s.Job(j.ID); j.ID != tt.want && got.Status != "queued" {
					t.Errorf("job %d is %s, want still queued", j.ID, got.Status)
				}
			}
		})
	}
}

// TestPlayCancelJob: no fixtures. A job cancelled while queued must complete as cancelled with
// no runner, announced, and a fitting runner coming online afterwards must get nothing. A job
// cancelled while running must complete as cancelled on its runner, which is removed, with no
// second completed webhook when its run would have ended.
func TestPlayCancelJob(t *testing.T) {
	t.Parallel()
	labels := []string{"self-hosted", "spotrunner/small"}
	tests := []struct {
		name        string
		started     bool
		wantHooks   func(runnerID int64) []hook
		wantRunners int
	}{
		{name: "before it started", wantHooks: func(int64) []hook {
			return []hook{{Action: "queued", Job: 1, Status: "queued"}, {Action: "completed", Job: 1, Status: "completed", Conclusion: "cancelled"}}
		}, wantRunners: 1},
		{name: "while running", started: true, wantHooks: func(id int64) []hook {
			return []hook{
				{Action: "queued", Job: 1, Status: "queued"},
				{Action: "in_progress", Job: 1, Status: "in_progress", RunnerName: "i-1", RunnerID: id},
				{Action: "completed", Job: 1, Status: "completed", Conclusion: "cancelled", RunnerName: "i-1", RunnerID: id},
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Long enough for the cancel to come first even on a loaded machine.
			const jobDuration = time.Second
			s, base, rc := startPlay(t, jobDuration)
			id, cfg := generateRunner(t, base, "orgs/acme", installationToken(t, base, "11"), "i-1", labels...)
			if err := s.QueueJob(t.Context(), Job{ID: 1, Owner: "acme", Repo: "app", Labels: labels}); err != nil {
				t.Fatal(err)
			}
			if tt.started {
				sim(t, "POST", base+"/_sim/runners", cfg)
				if r := sim(t, "GET", base+"/_sim/runners/i-1/job?wait=5", ""); r.status != http.StatusOK {
					t.Fatalf("job: %d %s", r.status, r.body)
				}
				waitHooks(t, rc, 2) // in_progress sent before the cancel
			}
			if err := s.CancelJob(t.Context(), 1); err != nil {
				t.Fatal(err)
			}
			if err := s.CancelJob(t.Context(), 1); err == nil {
				t.Error("a second CancelJob succeeded")
			}
			if !tt.started {
				if r := sim(t, "POST", base+"/_sim/runners", cfg); r.status != http.StatusCreated {
					t.Fatalf("connect: %d %s", r.status, r.body)
				}
				if r := sim(t, "GET", base+"/_sim/runners/i-1/job?wait=0.3", ""); r.status != http.StatusNoContent {
					t.Errorf("runner's job after the cancel: %d %s, want 204", r.status, r.body)
				}
			} else {
				r := sim(t, "GET", base+"/_sim/runners/i-1/done?wait=5", "")
				var done simDoneJSON
				r.decode(t, &done)
				if done.Conclusion != "cancelled" {
					t.Errorf("done: %d %s, want cancelled", r.status, r.body)
				}
				time.Sleep(jobDuration + 200*time.Millisecond) // past the end of the job's run
			}
			if diff := cmp.Diff(tt.wantHooks(id), waitHooks(t, rc, len(tt.wantHooks(id)))); diff != "" {
				t.Errorf("webhooks (-want +got):\n%s", diff)
			}
			if got := len(s.Runners()); got != tt.wantRunners {
				t.Errorf("%d runners, want %d", got, tt.wantRunners)
			}
		})
	}
}

// TestPlayUndelivered: no fixtures. Job 3's queued webhook is lost: nothing may reach the
// receiver, and the hook deliveries must list it as failed to connect. Redelivering it through
// the API must send it, signed, with the same GUID, to the original URL, after which the job
// runs as any other.
func TestPlayUndelivered(t *testing.T) {
	t.Parallel()
	s, base, rc := startPlay(t, 0)
	labels := []string{"self-hosted", "spotrunner/small"}
	if err := s.QueueJobUndelivered(t.Context(), Job{ID: 3, RunID: 30, Owner: "acme", Repo: "app", Labels: labels}); err != nil {
		t.Fatal(err)
	}
	if n := len(rc.all()); n != 0 {
		t.Fatalf("receiver got %d webhooks for an undelivered job, want none", n)
	}
	jwt := func() string { return "Bearer " + appJWT(t, appKey(), nil) }
	r := call(t, "GET", base+"/api/v3/app/hook/deliveries?status=failure", jwt(), nil)
	var failed []struct {
		deliveryView
		ID int64
	}
	r.decode(t, &failed)
	want := deliveryView{Event: "workflow_job", Action: ptr("queued"), StatusCode: 502, Status: "failed to connect"}
	if len(failed) != 1 {
		t.Fatalf("failed deliveries: %s, want one", r.body)
	}
	guid := failed[0].GUID
	want.GUID = guid
	if diff := cmp.Diff(want, failed[0].deliveryView); diff != "" {
		t.Errorf("failed delivery (-want +got):\n%s", diff)
	}

	r = call(t, "POST", base+"/api/v3/app/hook/deliveries/"+strconv.FormatInt(failed[0].ID, 10)+"/attempts", jwt(), nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("redeliver: %d %s", r.status, r.body)
	}
	got := rc.all()
	if len(got) != 1 || got[0].header.Get("X-GitHub-Delivery") != guid {
		t.Fatalf("receiver got %d webhooks after the redelivery, want the one of delivery %s", len(got), guid)
	}
	if diff := cmp.Diff([]hook{{Action: "queued", Job: 3, Status: "queued"}}, hooks(t, rc)); diff != "" {
		t.Errorf("redelivered webhook (-want +got):\n%s", diff)
	}

	_, cfg := generateRunner(t, base, "orgs/acme", installationToken(t, base, "11"), "i-1", labels...)
	sim(t, "POST", base+"/_sim/runners", cfg)
	if r := sim(t, "GET", base+"/_sim/runners/i-1/done?wait=5", ""); r.status != http.StatusOK {
		t.Errorf("the redelivered job did not run: %d %s", r.status, r.body)
	}
}

// TestPlayConnectRefusals: no fixtures. POST /_sim/runners with a config that cannot register a
// runner must be refused with a message: one used already (409), one whose runner was deleted
// through the API (404), a forged one (404), and a body that is no JIT config (400).
func TestPlayConnectRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		config func(t *testing.T, base, tok, cfg string, id int64) string
		want   int
	}{
		{"used twice", func(t *testing.T, base, _, cfg string, _ int64) string {
			if r := sim(t, "POST", base+"/_sim/runners", cfg); r.status != http.StatusCreated {
				t.Fatalf("first connect: %d %s", r.status, r.body)
			}
			return cfg
		}, http.StatusConflict},
		{"runner deleted", func(t *testing.T, base, tok, cfg string, id int64) string {
			if r := call(t, "DELETE", base+"/api/v3/orgs/acme/actions/runners/"+strconv.FormatInt(id, 10), "token "+tok, nil); r.status != http.StatusNoContent {
				t.Fatalf("delete runner: %d %s", r.status, r.body)
			}
			return cfg
		}, http.StatusNotFound},
		{"forged credentials", func(t *testing.T, _, _, cfg string, _ int64) string {
			var files map[string]string
			if err := decodeB64JSON(cfg, &files); err != nil {
				t.Fatal(err)
			}
			files[".credentials"] = b64JSON(runnerCredentials{Scheme: "OAuth"})
			return b64JSON(files)
		}, http.StatusNotFound},
		{"not a JIT config", func(*testing.T, string, string, string, int64) string { return "hello" }, http.StatusBadRequest},
		{"empty", func(*testing.T, string, string, string, int64) string { return "" }, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, base, _ := startPlay(t, 0)
			tok := installationToken(t, base, "11")
			id, cfg := generateRunner(t, base, "orgs/acme", tok, "i-1", "self-hosted")
			r := sim(t, "POST", base+"/_sim/runners", tt.config(t, base, tok, cfg, id))
			var msg simMessage
			r.decode(t, &msg)
			if r.status != tt.want || msg.Message == "" {
				t.Errorf("connect: %d %s, want %d with a message", r.status, r.body, tt.want)
			}
		})
	}
}

// TestPlayOutage: no fixtures. During an outage every /api/v3 request must answer 503 with
// GitHub's error body while webhooks and the /_sim endpoints carry on; when it ends the API
// must answer again, not before.
func TestPlayOutage(t *testing.T) {
	t.Parallel()
	s, base, rc := startPlay(t, 0)
	_, cfg := generateRunner(t, base, "orgs/acme", installationToken(t, base, "11"), "i-1", "self-hosted")
	getApp := func() response { return call(t, "GET", base+"/api/v3/app", "Bearer "+appJWT(t, appKey(), nil), nil) }

	const d = 2 * time.Second
	start := time.Now()
	s.Outage(d)
	r := getApp()
	var e basicError
	r.decode(t, &e)
	if diff := cmp.Diff(basicError{Message: "Service Unavailable", DocumentationURL: docsURL, Status: "503"}, e); r.status != http.StatusServiceUnavailable || diff != "" {
		t.Errorf("GET /app in the outage: %d, body (-want +got):\n%s", r.status, diff)
	}
	if err := s.QueueJob(t.Context(), Job{ID: 1, Owner: "acme", Repo: "app", Labels: []string{"self-hosted"}}); err != nil {
		t.Fatal(err)
	}
	if r := sim(t, "POST", base+"/_sim/runners", cfg); r.status != http.StatusCreated {
		t.Errorf("connect in the outage: %d %s", r.status, r.body)
	}
	if got := waitHooks(t, rc, 3); len(got) != 3 {
		t.Errorf("webhooks in the outage: %+v, want queued, in_progress, completed", got)
	}
	if r := getApp(); r.status != http.StatusServiceUnavailable && time.Since(start) < d {
		t.Fatalf("GET /app answered %d before the outage ended", r.status)
	}
	for getApp().status == http.StatusServiceUnavailable {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the API still answers 503 five seconds after a %s outage", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if elapsed := time.Since(start); elapsed < d {
		t.Errorf("the API answered again after %s, before the %s outage ended", elapsed, d)
	}

	s.Outage(time.Hour)
	if r := getApp(); r.status != http.StatusServiceUnavailable {
		t.Errorf("GET /app in an hour-long outage: %d", r.status)
	}
	s.Outage(0)
	if r := getApp(); r.status != http.StatusOK {
		t.Errorf("GET /app after Outage(0): %d %s", r.status, r.body)
	}
}

// TestPlayRunnerExits: no fixtures. A runner whose process goes away (DELETE /_sim/runners/NAME)
// while idle must go offline and get no job; one that goes away during its job must fail the
// job, announced, and be removed.
func TestPlayRunnerExits(t *testing.T) {
	t.Parallel()
	labels := []string{"self-hosted"}
	tests := []struct {
		name       string
		busy       bool
		wantHooks  []string
		wantStatus string // the runner's, "" when removed
	}{
		{name: "idle", wantHooks: []string{"queued"}, wantStatus: "offline"},
		{name: "during its job", busy: true, wantHooks: []string{"queued", "in_progress", "completed/failure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, base, rc := startPlay(t, time.Minute)
			_, cfg := generateRunner(t, base, "orgs/acme", installationToken(t, base, "11"), "i-1", labels...)
			sim(t, "POST", base+"/_sim/runners", cfg)
			if tt.busy {
				if err := s.QueueJob(t.Context(), Job{ID: 1, Owner: "acme", Repo: "app", Labels: labels}); err != nil {
					t.Fatal(err)
				}
				waitHooks(t, rc, 2)
			}
			if r := sim(t, "DELETE", base+"/_sim/runners/i-1", ""); r.status != http.StatusNoContent {
				t.Fatalf("exit: %d %s", r.status, r.body)
			}
			if r := sim(t, "DELETE", base+"/_sim/runners/i-1", ""); r.status != http.StatusNotFound {
				t.Errorf("second exit: %d %s, want 404", r.status, r.body)
			}
			if !tt.busy {
				if err := s.QueueJob(t.Context(), Job{ID: 1, Owner: "acme", Repo: "app", Labels: labels}); err != nil {
					t.Fatal(err)
				}
				if r := sim(t, "GET", base+"/_sim/runners/i-1/job?wait=0.3", ""); r.status != http.StatusNotFound {
					t.Errorf("job of an offline runner: %d %s, want 404", r.status, r.body)
				}
			}
			var got []string
			for _, h := range waitHooks(t, rc, len(tt.wantHooks)) {
				a := h.Action
				if h.Conclusion != "" {
					a += "/" + h.Conclusion
				}
				got = append(got, a)
			}
			if diff := cmp.Diff(tt.wantHooks, got); diff != "" {
				t.Errorf("webhooks (-want +got):\n%s", diff)
			}
			var status string
			if rs := s.Runners(); len(rs) == 1 {
				status = rs[0].Status
			}
			if status != tt.wantStatus {
				t.Errorf("runner status %q, want %q (empty: removed)", status, tt.wantStatus)
			}
		})
	}
}

// TestPlayConcurrent: no fixtures. 50 jobs are queued while 50 runners connect, all at once,
// half of each asking for spotrunner/small and half for spotrunner/large, each runner driven as
// run.sh would through the /_sim endpoints. Every job must run exactly once (queued, in_progress,
// completed, in that order, on one runner whose labels fit), every runner must run exactly one
// job, the one its long-poll reported, and no runner may be left.
func TestPlayConcurrent(t *testing.T) {
	t.Parallel()
	s, base, rc := startPlay(t, 10*time.Millisecond)
	tok := installationToken(t, base, "11")
	const n = 50
	size := func(i int) string { return []string{"small", "large"}[i%2] }
	configs := make([]string, n)
	for i := range n {
		_, configs[i] = generateRunner(t, base, "orgs/acme", tok, fmt.Sprintf("i-%02d", i), "self-hosted", "spotrunner/"+size(i))
	}

	ranOn := make([]int64, n) // the job runner i's long-poll reported
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			j := Job{ID: int64(100 + i), RunID: 1, Owner: "acme", Repo: "app", Labels: []string{"self-hosted", "spotrunner/" + size(i)}}
			if err := s.QueueJob(t.Context(), j); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			var err error
			if ranOn[i], err = standIn(t.Context(), base, fmt.Sprintf("i-%02d", i), configs[i]); err != nil {
				errs <- fmt.Errorf("runner i-%02d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	byJob := map[int64][]hook{}
	for _, h := range waitHooks(t, rc, 3*n) {
		byJob[h.Job] = append(byJob[h.Job], h)
	}
	jobOf := map[string]int64{}
	for i := range n {
		id := int64(100 + i)
		hs := byJob[id]
		var actions []string
		for _, h := range hs {
			actions = append(actions, h.Action)
		}
		if !slices.Equal(actions, []string{"queued", "in_progress", "completed"}) {
			t.Errorf("job %d webhooks %q, want queued, in_progress, completed", id, actions)
			continue
		}
		runner := hs[1].RunnerName
		if hs[2].RunnerName != runner || hs[2].Conclusion != "success" {
			t.Errorf("job %d started on %s, completed %+v", id, runner, hs[2])
		}
		if prev, ok := jobOf[runner]; ok {
			t.Errorf("runner %s ran jobs %d and %d", runner, prev, id)
		}
		jobOf[runner] = id
		if k, _ := strconv.Atoi(strings.TrimPrefix(runner, "i-")); size(k) != size(i) {
			t.Errorf("job %d (spotrunner/%s) ran on %s (spotrunner/%s)", id, size(i), runner, size(k))
		}
	}
	for i := range n {
		name := fmt.Sprintf("i-%02d", i)
		if jobOf[name] != ranOn[i] {
			t.Errorf("runner %s: long-poll reported job %d, webhooks say %d", name, ranOn[i], jobOf[name])
		}
	}
	if rs := s.Runners(); len(rs) != 0 {
		t.Errorf("%d runners left, want none", len(rs))
	}
}

// standIn does what run.sh does with the simulator: connect with the config, wait for a job,
// wait for its end. It returns the job's id.
func standIn(ctx context.Context, base, name, config string) (int64, error) {
	if status, body, err := simCall(ctx, "POST", base+"/_sim/runners", config); err != nil || status != http.StatusCreated {
		return 0, fmt.Errorf("connect: %d %s %v", status, body, err)
	}
	status, body, err := simCall(ctx, "GET", base+"/_sim/runners/"+name+"/job?wait=20", "")
	var job simJobJSON
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &job) != nil {
		return 0, fmt.Errorf("job: %d %s %v", status, body, err)
	}
	status, body, err = simCall(ctx, "GET", base+"/_sim/runners/"+name+"/done?wait=20", "")
	var done simDoneJSON
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &done) != nil || done.ID != job.ID || done.Conclusion != "success" {
		return 0, fmt.Errorf("done: %d %s %v", status, body, err)
	}
	return job.ID, nil
}

// TestSimEndpoints: no fixtures. The /_sim endpoints must stay outside GitHub's API (not
// routed under /api/v3, not among the routes the conformance test checks, not in Calls), refuse
// a bad wait, answer 404 to an unknown runner, end a long-poll whose client went away, and end
// pending long-polls with 503 when the server closes.
func TestSimEndpoints(t *testing.T) {
	t.Parallel()
	s, base, _ := startPlay(t, 0)
	for _, rt := range s.routeList() {
		if strings.Contains(rt.pattern, simPrefix) {
			t.Errorf("route %q is among the API routes", rt.pattern)
		}
	}
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"under /api/v3", "GET", "/api/v3/_sim/runners/x/job", http.StatusNotFound},
		{"unknown endpoint", "GET", "/_sim/nope", http.StatusNotFound},
		{"unknown runner", "GET", "/_sim/runners/nobody/job", http.StatusNotFound},
		{"unknown runner, done", "GET", "/_sim/runners/nobody/done?wait=0.1", http.StatusNotFound},
		{"bad wait", "GET", "/_sim/runners/x/job?wait=soon", http.StatusBadRequest},
		{"negative wait", "GET", "/_sim/runners/x/job?wait=-1", http.StatusBadRequest},
	}
	for _, tt := range tests {
		if r := sim(t, tt.method, base+tt.path, ""); r.status != tt.want {
			t.Errorf("%s: %s %s = %d %s, want %d", tt.name, tt.method, tt.path, r.status, r.body, tt.want)
		}
	}
	// Calls holds paths without /api/v3: only the request under /api/v3 may be there.
	var recorded []Call
	for _, c := range s.Calls() {
		if strings.Contains(c.Path, simPrefix) {
			recorded = append(recorded, c)
		}
	}
	if diff := cmp.Diff([]Call{{Method: "GET", Path: "/_sim/runners/x/job", Status: http.StatusNotFound}}, recorded); diff != "" {
		t.Errorf("recorded calls to /_sim paths (-want +got):\n%s", diff)
	}

	_, cfg := generateRunner(t, base, "orgs/acme", installationToken(t, base, "11"), "i-1", "self-hosted")
	sim(t, "POST", base+"/_sim/runners", cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	start := time.Now()
	s.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/_sim/runners/i-1/job?wait=30", nil))
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("a long-poll whose client went away after 100 ms took %s", elapsed)
	}

	result := make(chan int, 1)
	go func() {
		status, _, _ := simCall(t.Context(), "GET", base+"/_sim/runners/i-1/done?wait=30", "")
		result <- status
	}()
	time.Sleep(100 * time.Millisecond)
	s.Close()
	select {
	case status := <-result:
		if status != http.StatusServiceUnavailable {
			t.Errorf("long-poll at Close: %d, want 503", status)
		}
	case <-time.After(5 * time.Second):
		t.Error("a long-poll outlived Close by five seconds")
	}
	if err := s.QueueJob(t.Context(), Job{ID: 9, Owner: "acme", Repo: "app"}); err == nil {
		t.Error("QueueJob after Close succeeded")
	}
}

// TestPlayMisuse: no fixtures. Play must refuse a receiver off loopback and a second call, and
// the play methods must refuse to run before Play or on a job GitHub could not queue.
func TestPlayMisuse(t *testing.T) {
	t.Parallel()
	panics := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	s, _ := startSim(t)
	if err := s.QueueJob(t.Context(), Job{ID: 1, Owner: "acme", Repo: "app"}); err == nil {
		t.Error("QueueJob before Play succeeded")
	}
	if err := s.CancelJob(t.Context(), 1); err == nil {
		t.Error("CancelJob before Play succeeded")
	}
	panics("Play off loopback", func() { s.Play(PlayOptions{WebhookURL: "http://hooks.example.invalid/webhook"}) })
	panics("Play without a URL", func() { s.Play(PlayOptions{}) })
	rc := startReceiver(t, http.StatusOK)
	s.Play(PlayOptions{WebhookURL: rc.url})
	panics("Play twice", func() { s.Play(PlayOptions{WebhookURL: rc.url}) })

	if err := s.QueueJob(t.Context(), Job{ID: 1, Owner: "acme", Repo: "app"}); err != nil {
		t.Fatal(err)
	}
	for name, j := range map[string]Job{
		"same id":           {ID: 1, Owner: "acme", Repo: "app"},
		"started":           {ID: 2, Owner: "acme", Repo: "app", Status: "in_progress"},
		"app not installed": {ID: 3, Owner: "stranger", Repo: "x"},
	} {
		if err := s.QueueJob(t.Context(), j); err == nil {
			t.Errorf("QueueJob, %s: succeeded", name)
		}
	}
	if _, ok := s.Job(3); ok {
		t.Error("a job QueueJob refused was kept")
	}
	if err := s.CancelJob(t.Context(), 99); err == nil {
		t.Error("CancelJob of an unknown job succeeded")
	}
}
