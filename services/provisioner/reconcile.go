package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/relaunch"
	"github.com/spotrunner/spotrunner/libs/state"
)

// reconcile corrects one exact label set after GitHub gave a runner to another job than the one
// it was launched for, or a job went away before it started. GitHub hands a job to any idle
// runner whose labels fit, so the only sound bookkeeping is by count, per label set:
//
//  1. uncovered jobs: launched jobs whose recorded runner is no longer idle (taken by another);
//  2. spare runners: registered idle runners whose job is no longer waiting on them;
//  3. pair them up: a spare runner is rebound to an uncovered job (no launch, no termination);
//  4. uncovered jobs left over get a relaunch (a new attempt through the queue), and relaunches
//     already decided but maybe not sent (a crash between the two steps) are sent again;
//  5. spare runners left over are deregistered and terminated.
//
// Jobs still queued or provisioning bring their own runner and are left out. The pool comes from
// an eventually consistent index, so every candidate is read again, strongly consistent, and every
// write is conditioned on what was read: a runner is never rebound or terminated on stale data.
func (h *Handler) reconcile(ctx context.Context, host string, labelSet []string) error {
	jobs, runners, err := h.jobs.Pool(ctx, host, labelSet)
	if err != nil {
		return err
	}
	// Every candidate, and the runner or job each is checked against, read again in batches:
	// a few requests whatever the size of the pool (one read per item made a burst of N jobs
	// cost N reads per event).
	keys := make([]state.JobKey, 0, len(jobs))
	for _, j := range jobs {
		keys = append(keys, state.JobKey{Host: j.Host, ID: j.ID})
	}
	curJobs, err := h.jobs.Jobs(ctx, keys)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(runners)+len(jobs))
	for _, r := range runners {
		ids = append(ids, r.InstanceID)
	}
	for _, j := range curJobs {
		if j.State == state.Launched {
			ids = append(ids, j.InstanceID) // idleFor
		}
	}
	curRunners, err := h.jobs.Runners(ctx, ids)
	if err != nil {
		return err
	}
	var missing []state.JobKey // the jobs idle runners are bound to, outside the pool (waitsOn)
	for _, r := range runners {
		if cur, ok := curRunners[r.InstanceID]; ok {
			if _, read := curJobs[state.JobKey{Host: cur.Host, ID: cur.JobID}]; !read {
				missing = append(missing, state.JobKey{Host: cur.Host, ID: cur.JobID})
			}
		}
	}
	more, err := h.jobs.Jobs(ctx, missing)
	if err != nil {
		return err
	}
	maps.Copy(more, curJobs)
	var (
		uncovered []state.Job
		spare     []state.Runner
		resend    []state.Job
	)
	for _, j := range jobs {
		switch cur, ok := curJobs[state.JobKey{Host: j.Host, ID: j.ID}]; {
		case !ok:
			// Gone since the index was written (expired): nothing waits on it.
		case relaunch.Marked(cur):
			resend = append(resend, cur)
		case cur.State == state.Launched && !idleFor(cur, curRunners):
			uncovered = append(uncovered, cur)
		}
	}
	for _, r := range runners {
		switch cur, ok := curRunners[r.InstanceID]; {
		case !ok, cur.State != state.Idle || cur.RunnerID == 0:
			// Busy now, or still being registered by its provisioning: not spare.
		case !waitsOn(cur, more):
			spare = append(spare, cur)
		}
	}
	var errs []error
	log := logging.From(ctx)
	for len(uncovered) > 0 && len(spare) > 0 {
		j, r := uncovered[0], spare[0]
		uncovered, spare = uncovered[1:], spare[1:]
		errs = append(errs, h.rebind(ctx, j, r))
		log.Info().Int64("rebindJob", j.ID).Str("rebindInstance", r.InstanceID).Msg("reconcile: runner rebound")
	}
	for _, j := range uncovered {
		errs = append(errs, h.relaunch(ctx, j))
		log.Info().Int64("relaunchJob", j.ID).Msg("reconcile: job lost its runner, relaunching")
	}
	for _, j := range resend {
		errs = append(errs, relaunch.Publish(ctx, h.requeue, j))
	}
	for _, r := range spare {
		errs = append(errs, h.terminateSpare(ctx, r))
		log.Info().Str("terminateInstance", r.InstanceID).Msg("reconcile: runner has nothing to take, terminating")
	}
	return errors.Join(errs...)
}

// idleFor reports whether launched job j's own runner is still idle, waiting for it.
func idleFor(j state.Job, runners map[string]state.Runner) bool {
	r, ok := runners[j.InstanceID]
	return ok && j.InstanceID != "" && r.State == state.Idle && r.JobID == j.ID
}

// waitsOn reports whether runner r's job still waits for exactly this runner.
func waitsOn(r state.Runner, jobs map[state.JobKey]state.Job) bool {
	j, ok := jobs[state.JobKey{Host: r.Host, ID: r.JobID}]
	if !ok {
		return true // unknown: not spare, to be safe (the reaper ends a runner nobody takes)
	}
	return j.State.Pending() && j.InstanceID == r.InstanceID
}

// rebind gives spare runner r to uncovered job j, each write conditioned on what was read.
func (h *Handler) rebind(ctx context.Context, j state.Job, r state.Runner) error {
	if _, err := h.jobs.UpdateRunner(ctx, r.InstanceID, []state.RunnerState{state.Idle}, state.Idle,
		state.RunnerChange{JobID: j.ID, ExpectJobID: r.JobID}); err != nil {
		if errors.Is(err, state.ErrConflict) {
			return nil // it took a job or was rebound meanwhile; the next count sees it
		}
		return err
	}
	old := j.InstanceID
	if _, err := h.jobs.Transition(ctx, j.Host, j.ID, []state.JobState{state.Launched}, state.Launched,
		state.Change{InstanceID: r.InstanceID, RunnerName: queue.RunnerName(r.InstanceID), ExpectInstance: &old}); err != nil && !errors.Is(err, state.ErrConflict) {
		return err
	}
	return nil
}

// relaunch puts a job that lost its runner back in the queue as a new launch attempt (the path the
// reaper shares, libs/relaunch).
func (h *Handler) relaunch(ctx context.Context, j state.Job) error {
	return relaunch.Job(ctx, h.jobs, h.requeue, j, relaunch.Reason)
}

// terminateSpare removes a runner nobody will take. The GitHub registration goes first: GitHub
// refuses to delete a busy runner (422), so a runner that took a job a moment ago is left alone.
func (h *Handler) terminateSpare(ctx context.Context, r state.Runner) error {
	err := h.github.DeleteRunner(ctx, runnerTarget(r), r.RunnerID)
	if errors.Is(err, githubapp.ErrInvalid) {
		return nil // busy: it took a job; its in_progress event will say which
	}
	if err != nil {
		return fmt.Errorf("deregister spare runner %s: %w", r.InstanceID, err)
	}
	if _, err := h.jobs.Retire(ctx, r.InstanceID, []state.RunnerState{state.Idle}, 0); err != nil && !errors.Is(err, state.ErrConflict) && !errors.Is(err, state.ErrCounterDrift) {
		return err
	}
	return errors.Join(
		h.fleet.Terminate(ctx, r.InstanceID),
		h.jit.Delete(ctx, r.InstanceID))
}

// runnerTarget is where a runner is registered.
func runnerTarget(r state.Runner) githubapp.Target {
	return githubapp.Target{InstallationID: r.InstallationID, Owner: r.Owner, Repo: r.Repo}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
