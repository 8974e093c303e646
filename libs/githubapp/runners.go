package githubapp

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-github/v84/github"
)

// Target is where runners are registered: the organization, or the repository when the owner is
// a user (users have no org-level runners).
type Target struct {
	InstallationID int64
	Owner          string
	// Repo is empty for an organization target.
	Repo string
}

func (t Target) String() string {
	if t.Repo == "" {
		return "org " + t.Owner
	}
	return "repo " + t.Owner + "/" + t.Repo
}

// JITConfig is a single-use runner registration. Encoded is a secret: it is registered with the
// log redactor by the caller's logging package the moment it exists.
type JITConfig struct {
	RunnerID   int64
	RunnerName string
	Encoded    string
}

// Runner is a registered self-hosted runner.
type Runner struct {
	ID     int64
	Name   string
	Status string // "online" | "offline"
	Busy   bool
	Labels []string
}

// GenerateJITConfig registers runner name with labels at t and returns its JIT config.
// A runner of that name already there is ErrConflict.
func (a *App) GenerateJITConfig(ctx context.Context, t Target, name string, labels []string, groupID int64) (JITConfig, error) {
	in, err := a.installation(ctx, t.InstallationID)
	if err != nil {
		return JITConfig{}, err
	}
	c := in.client
	req := &github.GenerateJITConfigRequest{Name: name, RunnerGroupID: groupID, Labels: labels}
	var cfg *github.JITRunnerConfig
	if t.Repo == "" {
		cfg, _, err = c.Actions.GenerateOrgJITConfig(ctx, t.Owner, req)
	} else {
		cfg, _, err = c.Actions.GenerateRepoJITConfig(ctx, t.Owner, t.Repo, req)
	}
	if err != nil {
		return JITConfig{}, fmt.Errorf("generate jit config for runner %q at %s: %w", name, t, classify(err))
	}
	if cfg.GetEncodedJITConfig() == "" || cfg.Runner == nil {
		return JITConfig{}, fmt.Errorf("generate jit config for runner %q at %s: empty answer: %w", name, t, ErrUnavailable)
	}
	return JITConfig{RunnerID: cfg.Runner.GetID(), RunnerName: cfg.Runner.GetName(), Encoded: cfg.GetEncodedJITConfig()}, nil
}

// RunnerByName looks a runner up by its exact name at t.
func (a *App) RunnerByName(ctx context.Context, t Target, name string) (Runner, bool, error) {
	in, err := a.installation(ctx, t.InstallationID)
	if err != nil {
		return Runner{}, false, err
	}
	c := in.client
	opts := &github.ListRunnersOptions{Name: github.Ptr(name), ListOptions: github.ListOptions{PerPage: 100}}
	var rs *github.Runners
	if t.Repo == "" {
		rs, _, err = c.Actions.ListOrganizationRunners(ctx, t.Owner, opts)
	} else {
		rs, _, err = c.Actions.ListRunners(ctx, t.Owner, t.Repo, opts)
	}
	if err != nil {
		return Runner{}, false, fmt.Errorf("find runner %q at %s: %w", name, t, classify(err))
	}
	for _, r := range rs.Runners {
		if r.GetName() == name {
			return toRunner(r), true, nil
		}
	}
	return Runner{}, false, nil
}

// DeleteRunner removes runner id at t; a runner already gone is not an error.
func (a *App) DeleteRunner(ctx context.Context, t Target, id int64) error {
	in, err := a.installation(ctx, t.InstallationID)
	if err != nil {
		return err
	}
	c := in.client
	if t.Repo == "" {
		_, err = c.Actions.RemoveOrganizationRunner(ctx, t.Owner, id)
	} else {
		_, err = c.Actions.RemoveRunner(ctx, t.Owner, t.Repo, id)
	}
	if err = classify(err); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete runner %d at %s: %w", id, t, err)
	}
	return nil
}

func toRunner(r *github.Runner) Runner {
	out := Runner{ID: r.GetID(), Name: r.GetName(), Status: r.GetStatus(), Busy: r.GetBusy()}
	for _, l := range r.Labels {
		out.Labels = append(out.Labels, l.GetName())
	}
	return out
}
