package githubapp

import (
	"context"
	"errors"
	"testing"

	"github.com/spotrunner/spotrunner/internal/ghessim"
)

// TestJobStatus (simulator): job 501 of acme/app queued, job 502 of acme/app taken by a runner
// (in_progress), job 503 of acme/app completed, job 504 of octocat/tools queued. Each status is
// read from its own repository; a job asked of another repository, an unknown job, an org
// target without a repository, a 503, a secondary rate limit and an App not installed are the
// sentinels a caller decides on (the reaper leaves the job alone on any error).
func TestJobStatus(t *testing.T) {
	t.Parallel()
	s, a := sim(t)
	labels := []string{"self-hosted", "spotrunner/linux-x64"}
	s.AddJob(ghessim.Job{ID: 501, RunID: 1, Owner: "acme", Repo: "app", Labels: labels})
	s.AddJob(ghessim.Job{ID: 502, RunID: 1, Owner: "acme", Repo: "app", Labels: labels})
	s.AddJob(ghessim.Job{ID: 503, RunID: 1, Owner: "acme", Repo: "app", Labels: labels})
	s.AddJob(ghessim.Job{ID: 504, RunID: 2, Owner: "octocat", Repo: "tools", Labels: labels})
	ctx := context.Background()
	acme := Target{InstallationID: 11, Owner: "acme"}
	if _, err := a.GenerateJITConfig(ctx, acme, "spotrunner-i-502", labels, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.AssignJob(502, "spotrunner-i-502"); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteJob(503, "cancelled"); err != nil {
		t.Fatal(err)
	}

	app := Target{InstallationID: 11, Owner: "acme", Repo: "app"}
	tools := Target{InstallationID: 12, Owner: "octocat", Repo: "tools"}
	tests := []struct {
		name    string
		fault   func()
		target  Target
		job     int64
		want    string
		wantErr error
	}{
		{name: "queued", target: app, job: 501, want: "queued"},
		{name: "in progress", target: app, job: 502, want: "in_progress"},
		{name: "completed", target: app, job: 503, want: "completed"},
		{name: "user repository", target: tools, job: 504, want: "queued"},
		{name: "another repository's job", target: app, job: 504, wantErr: ErrNotFound},
		{name: "unknown job", target: app, job: 999, wantErr: ErrNotFound},
		{name: "org target", target: acme, job: 501, wantErr: errNoRepo},
		{name: "503", fault: func() { s.Fail("GET /repos/acme/app/actions/jobs/501", 1, 503) }, target: app, job: 501, wantErr: ErrUnavailable},
		{name: "rate limited", fault: func() { s.Fail("GET /repos/acme/app/actions/jobs/501", 1, 403, ghessim.WithRateLimit()) }, target: app, job: 501, wantErr: ErrRateLimited},
		{name: "not installed", target: Target{InstallationID: 999, Owner: "acme", Repo: "app"}, job: 501, wantErr: ErrNotInstalled},
	}
	for _, tt := range tests { // one simulator, so one case at a time: a fault is for the next call
		if tt.fault != nil {
			tt.fault()
		}
		got, err := a.JobStatus(ctx, tt.target, tt.job)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: JobStatus = %q, %v; want %v", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: JobStatus = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
