package githubapp

import (
	"context"
	"errors"
	"fmt"
)

// JobStatus returns workflow job jobID's status on GitHub ("queued", "in_progress", "completed",
// "waiting", ...), asked of t's repository (t.Repo is required: GitHub serves jobs per
// repository). A job GitHub does not know in that repository is ErrNotFound; other failures wrap
// classify's sentinels.
func (a *App) JobStatus(ctx context.Context, t Target, jobID int64) (string, error) {
	if t.Repo == "" {
		return "", fmt.Errorf("status of job %d at %s: %w", jobID, t, errNoRepo)
	}
	in, err := a.installation(ctx, t.InstallationID)
	if err != nil {
		return "", err
	}
	job, _, err := in.client.Actions.GetWorkflowJobByID(ctx, t.Owner, t.Repo, jobID)
	if err != nil {
		return "", fmt.Errorf("status of job %d at %s: %w", jobID, t, classify(err))
	}
	if job.GetStatus() == "" {
		return "", fmt.Errorf("status of job %d at %s: answer has no status: %w", jobID, t, ErrUnavailable)
	}
	return job.GetStatus(), nil
}

// errNoRepo: a job's status is asked of an organization target; jobs live in repositories.
var errNoRepo = errors.New("a job is looked up in its repository, and the target names none")
