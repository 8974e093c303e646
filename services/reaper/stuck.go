package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/relaunch"
	"github.com/spotrunner/spotrunner/libs/state"
)

// stuckReason is on record for a job the reaper relaunched because its runner sat idle.
const stuckReason = "relaunched by the reaper: its runner never took a job"

// stuckLaunches retires the runners launched more than StuckAfter ago that have not taken a job
// (runner#idle), and puts the job each was launched for back in line when GitHub still has it
// queued.
//
// Only GitHub knows whether a runner took a job a moment ago (its in_progress event may still be
// on its way), so a runner GitHub says is busy, or about which GitHub does not answer, is left
// alone: terminating it could kill a running job. The registration is deleted first because
// GitHub refuses to delete a busy runner (422), which closes the race, and a deleted runner
// takes no job after. Then the item is marked done with a write conditioned on the runner still
// idle and bound to the same job (a concurrent event or rebind wins), and only then is the
// instance terminated and the slot freed.
func (rp *Reaper) stuckLaunches(ctx context.Context, r *pass) error {
	const step = "stuckLaunches"
	return rp.eachRunner(ctx, r, step, []string{state.PhaseIdle}, func(ctx context.Context, run state.Runner) error {
		if run.State != state.Idle || rp.now().Sub(run.LaunchedAt) < rp.cfg.StuckAfter {
			return nil
		}
		return rp.unstick(ctx, r, step, run)
	})
}

// unstick retires one stuck runner and relaunches its job if GitHub still has it queued.
func (rp *Reaper) unstick(ctx context.Context, r *pass, step string, run state.Runner) error {
	id := run.InstanceID
	alive, why, err := rp.ownInstance(ctx, id)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	if why != "" {
		r.skip(ctx, step, id, why)
		return nil
	}
	if run.RunnerName == "" {
		r.skip(ctx, step, id, "no runner name on record: GitHub cannot be asked whether it is busy")
		return nil
	}
	t := targetOfRunner(run)
	gh, registered, err := rp.github.RunnerByName(ctx, t, run.RunnerName)
	if err != nil {
		r.skip(ctx, step, id, fmt.Sprintf("GitHub did not say whether runner %s is busy (%v): it may be", run.RunnerName, err))
		return nil
	}
	if registered && gh.Busy {
		r.skip(ctx, step, id, fmt.Sprintf("GitHub says runner %s is busy: the event naming its job is on its way", run.RunnerName))
		return nil
	}
	if registered {
		err := r.act(ctx, step, "deregister runner", run.RunnerName, func() error { return rp.github.DeleteRunner(ctx, t, gh.ID) })
		if errors.Is(err, githubapp.ErrInvalid) {
			r.skip(ctx, step, id, fmt.Sprintf("GitHub refused to delete runner %s: it took a job a moment ago", run.RunnerName))
			return nil
		}
		if err != nil {
			return err
		}
	}
	retired, err := rp.retire(ctx, r, step, run, []state.RunnerState{state.Idle}, run.JobID, alive)
	if !retired {
		return err
	}
	// A terminate that failed leaves the instance to the orphans step; the job is relaunched all the same.
	return errors.Join(err, rp.relaunchStuck(ctx, r, step, run))
}

// relaunchStuck puts the job stuck runner run was launched for back in line, when the job still
// waits on that instance and GitHub still has it queued. A job GitHub has started, finished or
// cancelled is left to its own events.
func (rp *Reaper) relaunchStuck(ctx context.Context, r *pass, step string, run state.Runner) error {
	if run.JobID == 0 {
		return nil
	}
	j, err := rp.jobs.Job(ctx, run.Host, run.JobID)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	if j.State != state.Launched || j.InstanceID != run.InstanceID {
		return nil // it no longer waits on this runner
	}
	ctx = logging.WithJob(ctx, j.Host, j.ID)
	subject := fmt.Sprintf("job %s/%d", j.Host, j.ID)
	status, err := rp.github.JobStatus(ctx, githubapp.Target{InstallationID: j.InstallationID, Owner: j.Owner, Repo: j.Repo}, j.ID)
	if err != nil {
		r.skip(ctx, step, subject, fmt.Sprintf("GitHub did not say whether the job is still queued (%v): the records step sees it launched on a done runner", err))
		return nil
	}
	if status != "queued" {
		r.skip(ctx, step, subject, fmt.Sprintf("GitHub says the job is %s, not queued: its own events follow", status))
		return nil
	}
	return r.act(ctx, step, "relaunch job", subject, func() error {
		return relaunch.Job(ctx, rp.jobs, rp.requeue, j, stuckReason)
	})
}

// The helpers below are shared by stuckLaunches and overTime.

// eachRunner calls fn for every runner item in phases, read again strongly consistent (the
// phase index is eventually consistent), with the instance id in ctx. The errors of single items
// are collected and the walk goes on; near the deadline it stops and the next run continues.
func (rp *Reaper) eachRunner(ctx context.Context, r *pass, step string, phases []string, fn func(context.Context, state.Runner) error) error {
	var errs []error
	for _, phase := range phases {
		for after := ""; ; {
			pks, next, err := rp.jobs.Phase(ctx, phase, after)
			if err == nil {
				err = rp.readPage(ctx, r, pks)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", step, err))
				break
			}
			for _, pk := range pks {
				if r.late() {
					r.cutOff = append(r.cutOff, step)
					return errors.Join(errs...)
				}
				run, err := rp.runnerOf(ctx, r, pk)
				if errors.Is(err, state.ErrNotFound) {
					continue // deleted since the index was read
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", step, err))
					continue
				}
				if err := fn(logging.WithInstance(ctx, run.InstanceID), run); err != nil {
					errs = append(errs, err)
				}
			}
			if after = next; after == "" {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// ownInstance looks up instance id and says whether this deployment may act on it: why is
// non-empty when it may not (another deployment's, or not ours at all). alive is false for an
// instance already terminating, terminated, or that EC2 no longer knows: there is nothing to
// terminate, but its runner and slot are still to be settled.
func (rp *Reaper) ownInstance(ctx context.Context, id string) (alive bool, why string, err error) {
	inst, found, err := rp.fleet.Lookup(ctx, id)
	switch {
	case err != nil:
		return false, "", err
	case !found:
		return false, "", nil
	case inst.Tags[fleet.ManagedTag] != "true":
		return false, fmt.Sprintf("instance not tagged %s=true", fleet.ManagedTag), nil
	case inst.Tags[fleet.DeploymentTag] != rp.cfg.Deployment:
		return false, fmt.Sprintf("instance of deployment %q, not %q", inst.Tags[fleet.DeploymentTag], rp.cfg.Deployment), nil
	}
	return inst.State != "shutting-down" && inst.State != "terminated", "", nil
}

// retire ends runner run in the table, if it is still in one of from (and bound to expectJobID
// when not 0): done, with its slot given back in the same transaction (state.Retire), so no done
// runner ever holds a slot. Then its instance, when alive, is terminated: a failed terminate leaves
// a done record, whose instance the orphans step terminates. retired is false when the record
// changed since it was read (a job event, a rebind): the next run looks again.
func (rp *Reaper) retire(ctx context.Context, r *pass, step string, run state.Runner, from []state.RunnerState, expectJobID int64, alive bool) (retired bool, err error) {
	id := run.InstanceID
	err = r.act(ctx, step, "retire runner", id, func() error {
		_, err := rp.jobs.Retire(ctx, id, from, expectJobID)
		if errors.Is(err, state.ErrCounterDrift) {
			// Retired: the counters were already low, which the records step repairs.
			logging.From(ctx).Warn().Err(err).Str("step", step).Msg("reaper: slot counter drift")
			return nil
		}
		return err
	})
	if errors.Is(err, state.ErrConflict) || errors.Is(err, state.ErrNotFound) {
		r.skip(ctx, step, id, "its record changed since it was read (a job event or a rebind): the next run looks again")
		return false, nil
	}
	if err != nil || !alive {
		return err == nil, err
	}
	return true, r.act(ctx, step, "terminate instance", id, func() error { return rp.fleet.Terminate(ctx, id) })
}

// targetOfRunner is where runner run is registered on GitHub.
func targetOfRunner(run state.Runner) githubapp.Target {
	return githubapp.Target{InstallationID: run.InstallationID, Owner: run.Owner, Repo: run.Repo}
}
