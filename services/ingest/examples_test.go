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
// (api.github.com and every ghes-3x folder that has any), signed here. Each is sent three ways with the outcome
// written down per example: as published (none has a spotrunner label: ignored), relabelled to
// spotrunner under the default filter (public repositories ignored, App-less deliveries 400),
// and relabelled with public repositories allowed and an installation added (queued, in_progress
// and completed forwarded, waiting ignored).
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
