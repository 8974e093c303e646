package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/queue"
)

// exampleFolders lists every folder of @octokit/webhooks-examples (api.github.com, ghes-3x).
func exampleFolders(t testing.TB) []string {
	t.Helper()
	root := filepath.Dir(filepath.Dir(world.Fixture(t, "@octokit/webhooks-examples/api.github.com/index.json")))
	paths, err := filepath.Glob(filepath.Join(root, "*", "index.json"))
	if err != nil || len(paths) < 2 {
		t.Fatalf("example folders: %v %v", paths, err)
	}
	var folders []string
	for _, p := range paths {
		folders = append(folders, filepath.Base(filepath.Dir(p)))
	}
	return folders
}

// workflowJobExamples returns the workflow_job examples of one folder, raw, in file order
// (none for the older GHES folders, which have no workflow_job example).
func workflowJobExamples(t testing.TB, folder string) []json.RawMessage {
	t.Helper()
	data, err := os.ReadFile(world.Fixture(t, "@octokit/webhooks-examples/"+folder+"/index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var index []struct {
		Name     string            `json:"name"`
		Examples []json.RawMessage `json:"examples"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		t.Fatal(err)
	}
	for _, e := range index {
		if e.Name == "workflow_job" {
			return e.Examples
		}
	}
	return nil
}

// variant rewrites an example: spotrunner labels, and an installation when it has none (the
// examples include repository-webhook deliveries, which carry no installation).
func variant(t testing.TB, raw json.RawMessage, addInstallation bool) []byte {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	p["workflow_job"].(map[string]any)["labels"] = []string{"self-hosted", "spotrunner/linux-x64"}
	if _, ok := p["installation"]; !ok && addInstallation {
		p["installation"] = map[string]any{"id": 5}
	}
	b, _ := json.Marshal(p)
	return b
}

// TestWebhookExamples: fixtures are every workflow_job example of @octokit/webhooks-examples
// (api.github.com and every ghes-3x folder that has any), signed here. Each is sent three ways
// with the outcome written down per example: as published (none has a spotrunner label or runs
// on a runner of ours: ignored), relabelled to spotrunner under the default filter (public
// repositories ignored, App-less deliveries 400), and relabelled with public repositories allowed
// and an installation added (queued, in_progress and completed forwarded, waiting ignored).
func TestWebhookExamples(t *testing.T) {
	t.Parallel()
	var (
		noLabel     = outcome{202, "ignored", "no spotrunner label"}
		waiting     = outcome{202, "ignored", "action waiting is not used"}
		public      = outcome{202, "ignored", "public repository"}
		noInstall   = outcome{400, "error", "no installation: deliveries must come from the GitHub App"}
		queued      = outcome{202, "queued", ""}
		privateGPU  = [3]outcome{noLabel, noInstall, queued} // in_progress, private org repo, no installation
		publicOrg   = [3]outcome{noLabel, public, queued}
		waitingUser = [3]outcome{waiting, waiting, waiting}
	)
	want := map[string][3]outcome{
		"api.github.com#0": privateGPU,
		"api.github.com#1": publicOrg, // completed
		"api.github.com#2": publicOrg, // completed
		"api.github.com#3": publicOrg, // in_progress, with installation
		"api.github.com#4": publicOrg, // in_progress, user-owned
		"api.github.com#5": publicOrg, // queued
		"api.github.com#6": publicOrg, // queued, user-owned, [self-hosted k8s]
		"api.github.com#7": waitingUser,
		"ghes-33#0":        privateGPU,
		"ghes-34#0":        privateGPU,
		"ghes-35#0":        privateGPU,
	}
	seen := 0
	for _, folder := range exampleFolders(t) {
		for i, raw := range workflowJobExamples(t, folder) {
			key := fmt.Sprintf("%s#%d", folder, i)
			w, ok := want[key]
			if !ok {
				t.Errorf("%s: new example without a written-down outcome", key)
				continue
			}
			seen++
			t.Run(key, func(t *testing.T) {
				t.Parallel()
				bodies := [3][]byte{raw, variant(t, raw, false), variant(t, raw, true)}
				filters := [3]Filter{{}, {}, {AllowPublic: true}}
				for v := range bodies {
					q := &fakeQueue{}
					got := call(t, newHandler(q, filters[v]), delivery("workflow_job", key, bodies[v], testSecret))
					if diff := cmp.Diff(w[v], got); diff != "" {
						t.Errorf("variant %d (-want +got):\n%s", v, diff)
					}
					if got.Status == "queued" {
						checkForwarded(t, bodies[v], q.msgs)
					}
				}
			})
		}
	}
	if seen != len(want) {
		t.Errorf("saw %d examples, expected %d: the fixture set changed", seen, len(want))
	}
}

// checkForwarded compares the one published message with the payload it came from.
func checkForwarded(t *testing.T, body []byte, msgs []queue.Message) {
	t.Helper()
	if len(msgs) != 1 {
		t.Fatalf("published %d messages, want 1", len(msgs))
	}
	var p struct {
		Action      string
		WorkflowJob struct {
			ID, RunID, RunAttempt int64
			RunnerName            *string `json:"runner_name"`
		} `json:"workflow_job"`
		Repository struct {
			Name  string
			Owner struct{ Login, Type string }
		}
		Installation struct{ ID int64 }
	}
	_ = json.Unmarshal(body, &p)
	m := msgs[0]
	got := []any{m.Action, m.JobID, m.InstallationID, m.Owner, m.OwnerType, m.Repo, m.Labels, m.Host}
	want := []any{p.Action, p.WorkflowJob.ID, p.Installation.ID, p.Repository.Owner.Login, p.Repository.Owner.Type,
		p.Repository.Name, []string{"self-hosted", "spotrunner/linux-x64"}, "ghes.example.com"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("message fields (-want +got):\n%s", diff)
	}
	if p.WorkflowJob.RunnerName != nil && m.RunnerName != *p.WorkflowJob.RunnerName {
		t.Errorf("runner name %q, want %q", m.RunnerName, *p.WorkflowJob.RunnerName)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("forwarded message does not validate: %v", err)
	}
}

// onRunner rewrites an example: the job's labels and runner name, and an installation when asked
// and it has none.
func onRunner(t testing.TB, raw json.RawMessage, jobLabels []string, runner string, addInstallation bool) []byte {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	job := p["workflow_job"].(map[string]any)
	job["labels"], job["runner_name"] = jobLabels, runner
	if _, ok := p["installation"]; !ok && addInstallation {
		p["installation"] = map[string]any{"id": 5}
	}
	b, _ := json.Marshal(p)
	return b
}

// TestJobsOnOurRunners (local world fixtures): fixtures are api.github.com workflow_job examples of
// @octokit/webhooks-examples (#0 in_progress, private org repo, no installation; #1 completed,
// public org repo; #3 in_progress, public org repo with installation; #5 queued), given a label
// set and a runner name. An in_progress or completed job on one of our runners (spotrunner-i-<id>)
// must be forwarded whatever its labels, the allow-lists and the public-repository rule, as it
// came; the same job on any other runner, a queued job without a spotrunner label and a job
// without labels must be ignored; a delivery without an installation stays a 400.
func TestJobsOnOurRunners(t *testing.T) {
	t.Parallel()
	const ours = "spotrunner-i-0abc123def4567890"
	selfHosted, spotrunner := []string{"self-hosted"}, []string{"self-hosted", "spotrunner/linux-x64"}
	others := Filter{Owners: map[string]bool{"other": true}, Repos: map[string]bool{"other/repo": true}}
	var (
		queued  = outcome{202, "queued", ""}
		noLabel = outcome{202, "ignored", "no spotrunner label"}
	)
	tests := []struct {
		name    string
		example int
		labels  []string
		runner  string
		install bool
		filter  Filter
		want    outcome
	}{
		{"in_progress of a self-hosted job on our runner, public repo", 3, selfHosted, ours, false, Filter{}, queued},
		{"completed of a self-hosted job on our runner", 1, selfHosted, ours, true, Filter{}, queued},
		{"on our runner, owner and repo not allowed", 3, selfHosted, ours, false, others, queued},
		{"spotrunner job on our runner, repo not allowed", 3, spotrunner, ours, false, others, queued},
		{"in_progress on a foreign runner", 3, selfHosted, "my-runner-1", false, Filter{AllowPublic: true}, noLabel},
		{"runner named only with our prefix", 3, selfHosted, "spotrunner-i-", false, Filter{AllowPublic: true}, noLabel},
		{"spotrunner job on a foreign runner, repo not allowed", 3, spotrunner, "my-runner-1", false, others, outcome{202, "ignored", "owner not allowed"}},
		{"queued without spotrunner label, naming our runner", 5, selfHosted, ours, false, Filter{AllowPublic: true}, noLabel},
		{"on our runner without labels", 3, []string{}, ours, false, Filter{AllowPublic: true}, noLabel},
		{"on our runner without installation", 0, selfHosted, ours, false, Filter{}, outcome{400, "error", "no installation: deliveries must come from the GitHub App"}},
	}
	examples := workflowJobExamples(t, "api.github.com")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := onRunner(t, examples[tt.example], tt.labels, tt.runner, tt.install)
			q := &fakeQueue{}
			if diff := cmp.Diff(tt.want, call(t, newHandler(q, tt.filter), delivery("workflow_job", tt.name, body, testSecret))); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
			if tt.want != queued {
				return
			}
			if len(q.msgs) != 1 {
				t.Fatalf("published %d messages, want 1", len(q.msgs))
			}
			m := q.msgs[0]
			if diff := cmp.Diff([]any{tt.labels, tt.runner}, []any{m.Labels, m.RunnerName}); diff != "" {
				t.Errorf("labels, runner name (-want +got):\n%s", diff)
			}
			if err := m.Validate(); err != nil {
				t.Errorf("forwarded message does not validate: %v", err)
			}
		})
	}
}
