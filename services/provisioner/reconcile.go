package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// reconcile corrects one exact label set after GitHub gave a runner to another job than the one
// it was launched for, or a job went away before it started. GitHub hands a job to any idle
// runner whose labels fit, so the only sound bookkeeping is by count, per label set:
//
//  1. uncovered jobs: launched jobs whose recorded runner is no longer idle (taken by another);
//  2. spare runners: idle runners whose job is no longer waiting on them;
//  3. pair them up: a spare runner is rebound to an uncovered job (no launch, no termination);
//  4. uncovered jobs left over get a relaunch (a new attempt through the queue);
//  5. spare runners left over are deregistered and terminated.
//
// Jobs still queued or provisioning bring their own runner and are left out.
func (h *Handler) reconcile(ctx context.Context, host string, labelSet []string) error {
	jobs, runners, err := h.jobs.Pool(ctx, host, labelSet)
	if err != nil {
		return err
	}
	idle := map[string]state.Runner{}
	for _, r := range runners {
		idle[r.InstanceID] = r
	}
	waiting := map[int64]state.Job{}
	var uncovered []state.Job
	for _, j := range jobs {
		waiting[j.ID] = j
		if j.State == state.Launched {
			if _, ok := idle[j.InstanceID]; !ok {
				uncovered = append(uncovered, j)
			}
		}
	}
	var spare []state.Runner
	for _, r := range runners {
		if r.RunnerID == 0 {
			continue // still being registered by its provisioning; counted next time
		}
		if j, ok := waiting[r.JobID]; !ok || j.InstanceID != r.InstanceID {
			spare = append(spare, r)
		}
	}
	log := logging.From(ctx)
	var errs []error
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
	for _, r := range spare {
		errs = append(errs, h.terminateSpare(ctx, r))
		log.Info().Str("terminateInstance", r.InstanceID).Msg("reconcile: runner has nothing to take, terminating")
	}
	return errors.Join(errs...)
}

func (h *Handler) rebind(ctx context.Context, j state.Job, r state.Runner) error {
	if _, err := h.jobs.Transition(ctx, j.Host, j.ID, []state.JobState{state.Launched}, state.Launched,
		state.Change{InstanceID: r.InstanceID, RunnerName: runnerName(r.InstanceID)}); err != nil && !errors.Is(err, state.ErrConflict) {
		return err
	}
	if _, err := h.jobs.UpdateRunner(ctx, r.InstanceID, []state.RunnerState{state.Idle}, state.Idle, state.RunnerChange{JobID: j.ID}); err != nil && !errors.Is(err, state.ErrConflict) {
		return err
	}
	return nil
}

// relaunch puts a job that lost its runner back in the queue as a new launch attempt.
func (h *Handler) relaunch(ctx context.Context, j state.Job) error {
	j, err := h.jobs.Transition(ctx, j.Host, j.ID, []state.JobState{state.Launched}, state.Queued,
		state.Change{ClearInstance: true, NextAttempt: true})
	if errors.Is(err, state.ErrConflict) {
		return nil // it started or ended meanwhile
	}
	if err != nil {
		return err
	}
	m := queue.Message{
		Version: queue.Version, Action: queue.ActionQueued, DeliveryID: "relaunch-" + strconv.Itoa(j.Attempt),
		Host: j.Host, InstallationID: j.InstallationID, Owner: j.Owner, OwnerType: j.OwnerType, Repo: j.Repo,
		JobID: j.ID, JobName: j.Name, RunID: j.RunID, RunAttempt: j.RunAttempt, Labels: j.Labels,
		ReceivedAt: j.ReceivedAt, Attempt: j.Attempt,
	}
	if err := h.requeue.Publish(ctx, m); err != nil {
		return fmt.Errorf("relaunch job %d: %w", j.ID, err)
	}
	return nil
}

// terminateSpare removes a runner nobody will take. The GitHub registration goes first: GitHub
// refuses to delete a busy runner, so a runner that took a job a moment ago is never killed.
func (h *Handler) terminateSpare(ctx context.Context, r state.Runner) error {
	if r.RunnerID == 0 {
		return nil // still being registered by its provisioning; the next count sees it
	}
	if err := h.github.DeleteRunner(ctx, runnerTarget(r), r.RunnerID); err != nil {
		return fmt.Errorf("deregister spare runner %s: %w", r.InstanceID, err)
	}
	if _, err := h.jobs.UpdateRunner(ctx, r.InstanceID, []state.RunnerState{state.Idle}, state.Done, state.RunnerChange{}); err != nil && !errors.Is(err, state.ErrConflict) {
		return err
	}
	return errors.Join(
		h.fleet.Terminate(ctx, r.InstanceID),
		h.jit.Delete(ctx, r.InstanceID),
		h.jobs.ReleaseSlot(ctx, r.InstanceID, h.cfg.MaxRunners, h.presetCap(ctx, r.Preset)))
}

// runnerTarget is where a runner is registered.
func runnerTarget(r state.Runner) githubapp.Target {
	return githubapp.Target{InstallationID: r.InstallationID, Owner: r.Owner, Repo: r.Repo}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
