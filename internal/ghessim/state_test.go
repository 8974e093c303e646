package ghessim

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestJobLifecycle: no fixtures. Job 7 of acme/app asks for [self-hosted, spotrunner/small]; a
// JIT runner with those labels is created, connects with its config, takes the job and
// completes it. At each step Job, Runners and the job route must show GitHub's state, and at the
// end the ephemeral runner must be gone.
func TestJobLifecycle(t *testing.T) {
	t.Parallel()
	s, base := startSim(t)
	tok := installationToken(t, base, strconv.Itoa(testOrgInst))
	labels := []string{"self-hosted", "spotrunner/small"}
	s.AddJob(Job{ID: 7, RunID: 70, Owner: "acme", Repo: "app", Name: "build", Labels: labels})
	id, cfg := generateRunner(t, base, "orgs/acme", tok, "i-0abc", "SELF-HOSTED", "spotrunner/small")

	steps := []struct {
		name       string
		do         func() error
		wantJob    Job
		wantRunner []Runner
	}{
		{
			name:       "queued",
			do:         func() error { return nil },
			wantJob:    Job{ID: 7, RunID: 70, RunAttempt: 1, Owner: "acme", Repo: "app", Name: "build", Labels: labels, Status: "queued"},
			wantRunner: []Runner{{ID: id, Name: "i-0abc", Owner: "acme", Labels: []string{"SELF-HOSTED", "spotrunner/small"}, Status: "offline", JITConfig: cfg}},
		},
		{
			name:       "connected",
			do:         func() error { _, err := s.ConnectRunner(cfg); return err },
			wantJob:    Job{ID: 7, RunID: 70, RunAttempt: 1, Owner: "acme", Repo: "app", Name: "build", Labels: labels, Status: "queued"},
			wantRunner: []Runner{{ID: id, Name: "i-0abc", Owner: "acme", Labels: []string{"SELF-HOSTED", "spotrunner/small"}, Status: "online", JITConfig: cfg}},
		},
		{
			name:       "assigned",
			do:         func() error { return s.AssignJob(7, "i-0abc") },
			wantJob:    Job{ID: 7, RunID: 70, RunAttempt: 1, Owner: "acme", Repo: "app", Name: "build", Labels: labels, Status: "in_progress", RunnerName: "i-0abc", RunnerID: id},
			wantRunner: []Runner{{ID: id, Name: "i-0abc", Owner: "acme", Labels: []string{"SELF-HOSTED", "spotrunner/small"}, Status: "online", Busy: true, JITConfig: cfg}},
		},
		{
			name:       "completed",
			do:         func() error { return s.CompleteJob(7, "success") },
			wantJob:    Job{ID: 7, RunID: 70, RunAttempt: 1, Owner: "acme", Repo: "app", Name: "build", Labels: labels, Status: "completed", Conclusion: "success", RunnerName: "i-0abc", RunnerID: id},
			wantRunner: []Runner{},
		},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got, ok := s.Job(7)
		if !ok {
			t.Fatalf("%s: job 7 is gone", st.name)
		}
		if diff := cmp.Diff(st.wantJob, got); diff != "" {
			t.Errorf("%s: Job(7) (-want +got):\n%s", st.name, diff)
		}
		if diff := cmp.Diff(st.wantRunner, s.Runners()); diff != "" {
			t.Errorf("%s: Runners() (-want +got):\n%s", st.name, diff)
		}
		var api struct {
			Status     string
			Conclusion *string
			RunnerName *string `json:"runner_name"`
		}
		r := call(t, "GET", base+"/api/v3/repos/acme/app/actions/jobs/7", "token "+tok, nil)
		if r.status != http.StatusOK {
			t.Fatalf("%s: GET job: %d %s", st.name, r.status, r.body)
		}
		r.decode(t, &api)
		if api.Status != st.wantJob.Status || (api.RunnerName != nil) != (st.wantJob.RunnerName != "") || (api.Conclusion != nil) != (st.wantJob.Conclusion != "") {
			t.Errorf("%s: GET job = %s, want status %s", st.name, r.body, st.wantJob.Status)
		}
	}
}

// TestAssignJobRefusals: no fixtures. Jobs and runners are set up so that GitHub would never
// hand the job to the runner; AssignJob must say so and change nothing.
func TestAssignJobRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		job     Job
		runner  string
		wantErr string
	}{
		{"unknown job", Job{ID: 1, Owner: "acme", Repo: "app"}, "org-runner", "assign job 2: no such job"},
		{"labels do not fit", Job{ID: 2, Owner: "acme", Repo: "app", Labels: []string{"self-hosted", "gpu"}}, "org-runner", `lacks the job's labels ["gpu"]`},
		{"unknown runner", Job{ID: 2, Owner: "acme", Repo: "app"}, "nobody", `no runner "nobody"`},
		{"runner of another repo", Job{ID: 2, Owner: "acme", Repo: "other"}, "repo-runner", `no runner "repo-runner"`},
		{"job not queued", Job{ID: 2, Owner: "acme", Repo: "app", Status: "completed", Conclusion: "success"}, "org-runner", "job is completed, not queued"},
		{"runner busy", Job{ID: 2, Owner: "acme", Repo: "app"}, "busy-runner", `runner "busy-runner" is busy`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, base := startSim(t)
			tok := installationToken(t, base, strconv.Itoa(testOrgInst))
			generateRunner(t, base, "orgs/acme", tok, "org-runner", "self-hosted")
			generateRunner(t, base, "orgs/acme", tok, "busy-runner", "self-hosted")
			generateRunner(t, base, "repos/acme/app", tok, "repo-runner", "self-hosted")
			s.AddJob(Job{ID: 99, Owner: "acme", Repo: "app", Labels: []string{"self-hosted"}})
			if err := s.AssignJob(99, "busy-runner"); err != nil {
				t.Fatal(err)
			}
			s.AddJob(tt.job)
			before := s.Runners()
			err := s.AssignJob(2, tt.runner)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("AssignJob(2, %q) = %v, want an error containing %q", tt.runner, err, tt.wantErr)
			}
			if diff := cmp.Diff(before, s.Runners()); diff != "" {
				t.Errorf("runners changed (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCompleteJob: no fixtures. A queued job may be cancelled (no runner to remove); completing
// twice or with a conclusion GitHub does not have is refused.
func TestCompleteJob(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		conclusion string
		twice      bool
		wantErr    string
	}{
		{"cancelled while queued", "cancelled", false, ""},
		{"twice", "success", true, "already completed"},
		{"unknown conclusion", "exploded", false, `conclusion "exploded" is not one of`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(Options{AppID: testAppID, AppPublicKey: &appKey().PublicKey})
			s.AddJob(Job{ID: 3, Owner: "acme", Repo: "app"})
			err := s.CompleteJob(3, tt.conclusion)
			if tt.twice {
				err = s.CompleteJob(3, tt.conclusion)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				got, _ := s.Job(3)
				if diff := cmp.Diff(Job{ID: 3, RunAttempt: 1, Owner: "acme", Repo: "app", Status: "completed", Conclusion: tt.conclusion}, got); diff != "" {
					t.Errorf("Job(3) (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CompleteJob = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestConnectRunner: no fixtures. A JIT config must decode to the runner's settings, connect its
// runner once (also after instance/bootstrap.sh marked it disableUpdate), and be refused when
// reused, forged, carrying another or a cut key, or its runner was deleted.
func TestConnectRunner(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		config  func(s *Server, base, tok, cfg string) string
		wantErr string
	}{
		{"good once", func(_ *Server, _, _, cfg string) string { return cfg }, ""},
		{"used twice", func(s *Server, _, _, cfg string) string {
			if _, err := s.ConnectRunner(cfg); err != nil {
				t.Fatal(err)
			}
			return cfg
		}, "already used"},
		{"forged credentials", func(_ *Server, _, _, cfg string) string {
			var files map[string]string
			if err := decodeB64JSON(cfg, &files); err != nil {
				t.Fatal(err)
			}
			files[".credentials"] = b64JSON(runnerCredentials{Scheme: "OAuth"})
			return b64JSON(files)
		}, "no such runner"},
		{"runner deleted", func(s *Server, base, tok, cfg string) string {
			id := s.Runners()[0].ID
			if r := call(t, "DELETE", base+"/api/v3/orgs/acme/actions/runners/"+strconv.FormatInt(id, 10), "token "+tok, nil); r.status != http.StatusNoContent {
				t.Fatalf("delete runner: %d %s", r.status, r.body)
			}
			return cfg
		}, "no such runner"},
		{"not base64", func(*Server, string, string, string) string { return "%%%" }, "decode JIT config"},
		{"marked disableUpdate by the bootstrap", func(_ *Server, _, _, cfg string) string {
			// What bootstrap.sh's without_update does with jq: a byte order mark dropped, a
			// boolean "disableUpdate" appended after GitHub's "DisableUpdate": "False".
			return editJIT(t, cfg, func(files map[string][]byte) {
				files[".runner"] = append(bytes.TrimSuffix(files[".runner"], []byte("}")), `,"disableUpdate":true}`...)
			})
		}, ""},
		{"byte order mark in .runner", func(_ *Server, _, _, cfg string) string {
			return editJIT(t, cfg, func(files map[string][]byte) { files[".runner"] = append([]byte("\ufeff"), files[".runner"]...) })
		}, ""},
		{"another runner's key", func(s *Server, _, _, cfg string) string {
			id := s.Runners()[0].ID
			return editJIT(t, cfg, func(files map[string][]byte) { files[".credentials_rsaparams"] = jsonOf(t, keyFor(id+1).params) })
		}, "not the key GitHub issued"},
		{"key cut short", func(s *Server, _, _, cfg string) string {
			cut := keyFor(s.Runners()[0].ID).params
			cut.Modulus = cut.Modulus[1:]
			return editJIT(t, cfg, func(files map[string][]byte) { files[".credentials_rsaparams"] = jsonOf(t, cut) })
		}, "modulus is 255 bytes, want 256"},
		{"no key", func(_ *Server, _, _, cfg string) string {
			return editJIT(t, cfg, func(files map[string][]byte) { delete(files, ".credentials_rsaparams") })
		}, "decode .credentials_rsaparams"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, base := startSim(t)
			tok := installationToken(t, base, strconv.Itoa(testOrgInst))
			id, cfg := generateRunner(t, base, "orgs/acme", tok, "i-1", "self-hosted")
			r, err := s.ConnectRunner(tt.config(s, base, tok, cfg))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ConnectRunner = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.ID != id || r.Status != "online" {
				t.Errorf("ConnectRunner = %+v, want runner %d online", r, id)
			}
			raw, _ := base64.StdEncoding.DecodeString(cfg)
			if !strings.Contains(string(raw), ".runner") {
				t.Errorf("config %s has no .runner file", raw)
			}
		})
	}
}
