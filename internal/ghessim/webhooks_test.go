package ghessim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// receiver is a webhook endpoint on loopback that records what it receives and answers status.
type receiver struct {
	url string

	mu       sync.Mutex
	status   int
	received []received
}

type received struct {
	header http.Header
	body   []byte
}

func startReceiver(t *testing.T, status int) *receiver {
	t.Helper()
	rc := &receiver{status: status}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.received = append(rc.received, received{header: r.Header.Clone(), body: body})
		w.WriteHeader(rc.status)
		_, _ = w.Write([]byte("thanks"))
	}))
	t.Cleanup(ts.Close)
	rc.url = ts.URL + "/webhook"
	return rc
}

func (rc *receiver) answer(status int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.status = status
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.received)
}

// verifySignature checks X-Hub-Signature-256 the way a receiver must, with the shared secret.
func verifySignature(t *testing.T, got received) {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(testSecret))
	mac.Write(got.body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(got.header.Get("X-Hub-Signature-256"))) {
		t.Errorf("X-Hub-Signature-256 = %q, want %q", got.header.Get("X-Hub-Signature-256"), want)
	}
}

// payloadView is the part of a workflow_job payload the tests compare.
type payloadView struct {
	Action       string
	Installation struct{ ID int64 }
	Organization *struct{ Login string }
	Repository   struct {
		FullName string `json:"full_name"`
		Private  bool
	}
	WorkflowJob struct {
		ID         int64
		RunID      int64 `json:"run_id"`
		Status     string
		Conclusion *string
		Labels     []string
		RunnerName *string `json:"runner_name"`
	} `json:"workflow_job"`
}

// TestSendWorkflowJob: no fixtures. Jobs of org acme (private repo) and user octocat go through
// their states; each case sends one workflow_job webhook, which the receiver must get signed with
// the secret, with GitHub's headers and a payload as of the action; the cases GitHub could not
// send must fail without sending anything.
func TestSendWorkflowJob(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		job     Job
		assign  bool
		done    string // conclusion to complete with, if any
		action  string
		url     string // default the receiver's
		want    func() payloadView
		wantErr string
	}{
		{
			name: "org job queued", job: Job{ID: 1, RunID: 10, Owner: "acme", Repo: "app", Labels: []string{"self-hosted", "spotrunner/small"}}, action: "queued",
			want: func() payloadView {
				var p payloadView
				p.Action, p.Installation.ID, p.Organization = "queued", testOrgInst, &struct{ Login string }{"acme"}
				p.Repository.FullName, p.Repository.Private = "acme/app", true
				p.WorkflowJob.ID, p.WorkflowJob.RunID, p.WorkflowJob.Status = 1, 10, "queued"
				p.WorkflowJob.Labels = []string{"self-hosted", "spotrunner/small"}
				return p
			},
		},
		{
			name: "user job in progress", job: Job{ID: 2, RunID: 20, Owner: "octocat", Repo: "tools", Labels: []string{"self-hosted"}}, assign: true, action: "in_progress",
			want: func() payloadView {
				var p payloadView
				p.Action, p.Installation.ID = "in_progress", testUsrInst
				p.Repository.FullName = "octocat/tools"
				p.WorkflowJob.ID, p.WorkflowJob.RunID, p.WorkflowJob.Status = 2, 20, "in_progress"
				p.WorkflowJob.Labels, p.WorkflowJob.RunnerName = []string{"self-hosted"}, ptr("r")
				return p
			},
		},
		{
			name: "completed", job: Job{ID: 3, RunID: 30, Owner: "acme", Repo: "app", Labels: []string{"self-hosted"}}, assign: true, done: "failure", action: "completed",
			want: func() payloadView {
				var p payloadView
				p.Action, p.Installation.ID, p.Organization = "completed", testOrgInst, &struct{ Login string }{"acme"}
				p.Repository.FullName, p.Repository.Private = "acme/app", true
				p.WorkflowJob.ID, p.WorkflowJob.RunID, p.WorkflowJob.Status = 3, 30, "completed"
				p.WorkflowJob.Labels, p.WorkflowJob.RunnerName, p.WorkflowJob.Conclusion = []string{"self-hosted"}, ptr("r"), ptr("failure")
				return p
			},
		},
		{
			name: "late queued event of a running job", job: Job{ID: 4, RunID: 40, Owner: "acme", Repo: "app", Labels: []string{"self-hosted"}}, assign: true, action: "queued",
			want: func() payloadView {
				var p payloadView
				p.Action, p.Installation.ID, p.Organization = "queued", testOrgInst, &struct{ Login string }{"acme"}
				p.Repository.FullName, p.Repository.Private = "acme/app", true
				p.WorkflowJob.ID, p.WorkflowJob.RunID, p.WorkflowJob.Status = 4, 40, "queued"
				p.WorkflowJob.Labels = []string{"self-hosted"}
				return p
			},
		},
		{name: "in_progress without a runner", job: Job{ID: 5, Owner: "acme", Repo: "app"}, action: "in_progress", wantErr: "AssignJob first"},
		{name: "completed without a conclusion", job: Job{ID: 5, Owner: "acme", Repo: "app"}, action: "completed", wantErr: "CompleteJob first"},
		{name: "unknown action", job: Job{ID: 5, Owner: "acme", Repo: "app"}, action: "started", wantErr: `action "started"`},
		{name: "owner without the app", job: Job{ID: 5, Owner: "stranger", Repo: "x"}, action: "queued", wantErr: "not installed on stranger"},
		{name: "receiver off loopback", job: Job{ID: 5, Owner: "acme", Repo: "app"}, action: "queued", url: "http://hooks.example.invalid/webhook", wantErr: "not on loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, base := startSim(t)
			rc := startReceiver(t, http.StatusAccepted)
			s.AddJob(tt.job)
			if tt.assign {
				scope := "orgs/" + tt.job.Owner
				tok := installationToken(t, base, strconv.Itoa(testOrgInst))
				if tt.job.Owner == testUser {
					scope, tok = "repos/octocat/tools", installationToken(t, base, strconv.Itoa(testUsrInst))
				}
				generateRunner(t, base, scope, tok, "r", tt.job.Labels...)
				if err := s.AssignJob(tt.job.ID, "r"); err != nil {
					t.Fatal(err)
				}
			}
			if tt.done != "" {
				if err := s.CompleteJob(tt.job.ID, tt.done); err != nil {
					t.Fatal(err)
				}
			}
			url := rc.url
			if tt.url != "" {
				url = tt.url
			}
			guid, status, err := s.SendWorkflowJob(t.Context(), url, tt.job.ID, tt.action)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SendWorkflowJob = %v, want an error containing %q", err, tt.wantErr)
				}
				if n := len(rc.all()); n != 0 {
					t.Errorf("receiver got %d webhooks, want none", n)
				}
				return
			}
			if err != nil || status != http.StatusAccepted {
				t.Fatalf("SendWorkflowJob = %d, %v; want 202", status, err)
			}
			got := rc.all()
			if len(got) != 1 {
				t.Fatalf("receiver got %d webhooks, want 1", len(got))
			}
			verifySignature(t, got[0])
			headers := map[string]string{}
			for _, h := range []string{"X-GitHub-Event", "X-GitHub-Delivery", "X-GitHub-Hook-Installation-Target-ID", "X-GitHub-Enterprise-Host", "Content-Type"} {
				headers[h] = got[0].header.Get(h)
			}
			wantHeaders := map[string]string{
				"X-GitHub-Event": "workflow_job", "X-GitHub-Delivery": guid, "X-GitHub-Hook-Installation-Target-ID": "4242",
				"X-GitHub-Enterprise-Host": "ghes.local", "Content-Type": "application/json",
			}
			if diff := cmp.Diff(wantHeaders, headers); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			var p payloadView
			if err := json.Unmarshal(got[0].body, &p); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want(), p); diff != "" {
				t.Errorf("payload (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWorkflowJobMatchesExamples: fixture @octokit/webhooks-examples (GitHub's real workflow_job
// payloads). For each real example's action, the simulator's payload must carry every top-level
// and workflow_job field the real one has (except deployment, which only environment jobs carry).
func TestWorkflowJobMatchesExamples(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(world.Fixture(t, "@octokit/webhooks-examples/api.github.com/index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var events []struct {
		Name     string
		Examples []map[string]any
	}
	if err := json.Unmarshal(raw, &events); err != nil {
		t.Fatal(err)
	}
	var examples []map[string]any
	for _, e := range events {
		if e.Name == "workflow_job" {
			examples = e.Examples
		}
	}
	if len(examples) == 0 {
		t.Fatal("no workflow_job examples in the fixture")
	}
	for i, ex := range examples {
		action, _ := ex["action"].(string)
		t.Run(strconv.Itoa(i)+"_"+action, func(t *testing.T) {
			t.Parallel()
			s, base := startSim(t)
			rc := startReceiver(t, http.StatusOK)
			s.AddJob(Job{ID: 1, RunID: 2, Owner: "acme", Repo: "app", Labels: []string{"self-hosted"}})
			generateRunner(t, base, "orgs/acme", installationToken(t, base, strconv.Itoa(testOrgInst)), "r", "self-hosted")
			if err := s.AssignJob(1, "r"); err != nil {
				t.Fatal(err)
			}
			if err := s.CompleteJob(1, "success"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.SendWorkflowJob(t.Context(), rc.url, 1, action); err != nil {
				t.Fatal(err)
			}
			var ours map[string]any
			if err := json.Unmarshal(rc.all()[0].body, &ours); err != nil {
				t.Fatal(err)
			}
			missing := missingKeys(ex, ours, "deployment", "installation") // installation: some examples are repository hooks'
			missing = append(missing, missingKeys(ex["workflow_job"].(map[string]any), ours["workflow_job"].(map[string]any))...)
			if len(missing) > 0 {
				t.Errorf("fields of the real payload missing from ours: %q", missing)
			}
		})
	}
}

func missingKeys(want, have map[string]any, except ...string) []string {
	var out []string
	for k := range want {
		if _, ok := have[k]; !ok && !slices.Contains(except, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestSendPing: no fixtures. The ping must reach the receiver signed, with the app id in its hook.
func TestSendPing(t *testing.T) {
	t.Parallel()
	s, _ := startSim(t)
	rc := startReceiver(t, http.StatusOK)
	guid, status, err := s.SendPing(t.Context(), rc.url)
	if err != nil || status != http.StatusOK {
		t.Fatalf("SendPing = %d, %v", status, err)
	}
	got := rc.all()[0]
	verifySignature(t, got)
	var p struct {
		HookID int64 `json:"hook_id"`
		Hook   struct {
			AppID int64 `json:"app_id"`
			Type  string
		}
	}
	if err := json.Unmarshal(got.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Hook.AppID != testAppID || p.Hook.Type != "App" || got.header.Get("X-GitHub-Event") != "ping" || got.header.Get("X-GitHub-Delivery") != guid {
		t.Errorf("ping = %s with headers %v", got.body, got.header)
	}
}

// TestUnsignedWithoutSecret: no fixtures. With no secret configured, GitHub sends no signature
// headers at all; the simulator must do the same.
func TestUnsignedWithoutSecret(t *testing.T) {
	t.Parallel()
	s, _ := Start(t, Options{AppID: testAppID, AppPublicKey: &appKey().PublicKey})
	rc := startReceiver(t, http.StatusOK)
	if _, _, err := s.SendPing(t.Context(), rc.url); err != nil {
		t.Fatal(err)
	}
	h := rc.all()[0].header
	if h.Get("X-Hub-Signature-256") != "" || h.Get("X-Hub-Signature") != "" {
		t.Errorf("signature headers sent without a secret: %v", h)
	}
}
