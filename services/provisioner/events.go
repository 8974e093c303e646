package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// started handles in_progress: the job runs on the runner GitHub names, and its record says so
// (instance and runner name). When that runner was launched for another job, or the job had a
// runner of its own, the count is corrected in every pool involved: the job's label set (its own
// runner may be spare now) and the taken runner's (its job may have lost its runner) — GitHub gives
// a job any runner whose labels include the job's, so they differ when a job with fewer labels, or
// one that is not ours at all, takes our runner. Every step after the job's own transition is safe
// to repeat, and a retry of this event repeats them: a job already running is not a reason to skip.
func (h *Handler) started(ctx context.Context, m queue.Message) (string, error) {
	iid, ours := queue.InstanceOfRunner(m.RunnerName)
	ran := state.Change{RunnerName: m.RunnerName, InstanceID: iid, ClearInstance: !ours}
	before, moved, err := h.toState(ctx, m, state.Running, ran, state.Queued, state.Provisioning, state.Launched)
	if err != nil || before.State.Final() {
		return "duplicate: job is " + string(before.State), err
	}
	// A retry of this event finds the job running already and repeats what follows.
	if !ours {
		// Our job ran elsewhere (a runner someone registered by hand): its own runner, if any, is
		// spare now.
		return "running on foreign runner " + m.RunnerName, h.reconcile(ctx, m.Host, before.LabelSet)
	}
	ctx = logging.WithInstance(ctx, iid)
	r, err := h.jobs.UpdateRunner(ctx, iid, []state.RunnerState{state.Idle}, state.Busy, state.RunnerChange{BusyJobID: m.JobID})
	switch {
	case errors.Is(err, state.ErrNotFound):
		return "running on unrecorded runner", h.reconcile(ctx, m.Host, before.LabelSet)
	case errors.Is(err, state.ErrConflict) && r.BusyJobID == m.JobID:
		// A retry of this event: the runner was marked before; the count may not have run.
	case errors.Is(err, state.ErrConflict) && r.State == state.Done:
		// completed came first (in_progress and completed are different groups for no job, but a
		// redelivery can arrive late): the runner is done, the count below still applies.
	case err != nil:
		return "", err
	}
	if r.JobID == m.JobID && before.InstanceID == iid && moved {
		return "running", nil
	}
	return "running on a runner launched for job " + itoa(r.JobID), h.correct(ctx, m.Host, before.LabelSet, r.LabelSet)
}

// finished handles completed: the job ends (cancelled when it was cancelled before it started),
// its record names the runner it ran on, and that runner is done. A job that ended without ever
// running leaves its runner with nothing to take: count again. A job that ran on a runner launched
// for another job — and whose in_progress never came (GitHub does not retry a failed delivery) —
// is corrected here as started would have. As in started, a retry repeats the follow-ups.
func (h *Handler) finished(ctx context.Context, m queue.Message) (string, error) {
	neverRan := m.RunnerName == ""
	to := state.Completed
	if neverRan && m.Conclusion == "cancelled" {
		to = state.Cancelled
	}
	iid, ours := queue.InstanceOfRunner(m.RunnerName)
	change := state.Change{RunnerName: m.RunnerName, Reason: conclusionReason(m.Conclusion)}
	if !neverRan {
		change.InstanceID, change.ClearInstance = iid, !ours
	}
	before, moved, err := h.toState(ctx, m, to, change, state.Queued, state.Provisioning, state.Launched, state.Running)
	if err != nil || before.State.Final() && before.State != to {
		return "duplicate: job is " + string(before.State), err
	}
	if moved && to == state.Completed {
		if err := h.jobs.CountActivity(ctx, h.now(), state.ActivityCompleted); err != nil {
			logging.From(ctx).Warn().Err(err).Msg("count completed job")
		}
	}
	if before.SlotHeld {
		// It ended while its launch was pending (a wait, a failed try): the slot goes back.
		if err := h.jobs.GiveBackSlot(ctx, before.Host, before.ID, before.Preset); err != nil {
			return "", err
		}
	}
	if neverRan {
		return string(to) + " before it started", h.reconcile(ctx, m.Host, before.LabelSet)
	}
	if !ours {
		if before.State.Pending() {
			return string(to) + " on foreign runner " + m.RunnerName, h.reconcile(ctx, m.Host, before.LabelSet)
		}
		return string(to), nil
	}
	r, err := h.retire(ctx, iid)
	if err != nil {
		return "", err
	}
	if r.InstanceID == "" || r.JobID == m.JobID && (before.InstanceID == iid || !before.State.Pending()) {
		return string(to), nil
	}
	return string(to) + " on a runner launched for job " + itoa(r.JobID), h.correct(ctx, m.Host, before.LabelSet, r.LabelSet)
}

// toState records job event m: the job is created in state `to` when it is new, or moved there
// from one of from. before is the job as it was (zero State for a new one), moved whether this
// call moved it; a job already in another state is returned as it is, with moved false.
func (h *Handler) toState(ctx context.Context, m queue.Message, to state.JobState, c state.Change, from ...state.JobState) (before state.Job, moved bool, err error) {
	j := jobFrom(m)
	if c.InstanceID != "" {
		j.InstanceID = c.InstanceID
	}
	j.RunnerName = c.RunnerName
	j.Reason = c.Reason
	cur, created, err := h.jobs.CreateJob(ctx, j, to)
	if err != nil || created {
		before = j
		before.State, before.InstanceID = "", ""
		return before, created, err
	}
	if !slices.Contains(from, cur.State) {
		return cur, false, nil // moved before: by a retry of this event when cur.State is `to`
	}
	_, err = h.jobs.Transition(ctx, m.Host, m.JobID, from, to, c)
	if errors.Is(err, state.ErrConflict) {
		// Moved by a concurrent worker between the read and the write: the retry sorts it out.
		return cur, false, fmt.Errorf("job %d: %w", m.JobID, errBusy)
	}
	return cur, err == nil, err
}

// correct recounts the pools of both label sets (once when they are the same).
func (h *Handler) correct(ctx context.Context, host string, jobSet, runnerSet []string) error {
	err := h.reconcile(ctx, host, jobSet)
	if len(runnerSet) > 0 && !slices.Equal(jobSet, runnerSet) {
		err = errors.Join(err, h.reconcile(ctx, host, runnerSet))
	}
	return err
}

// retire marks a runner done and frees its cap slot in one transaction (state.Retire); the
// instance shuts itself down. It returns the runner as it was (zero for a runner never recorded);
// a runner already done is returned as it is now.
func (h *Handler) retire(ctx context.Context, instanceID string) (state.Runner, error) {
	r, err := h.jobs.Retire(ctx, instanceID, []state.RunnerState{state.Idle, state.Busy}, 0)
	switch {
	case errors.Is(err, state.ErrNotFound):
		return state.Runner{}, nil
	case errors.Is(err, state.ErrCounterDrift):
		logging.From(ctx).Warn().Err(err).Msg("retire runner: slot counter drift (the reaper repairs it)")
	case err != nil && !errors.Is(err, state.ErrConflict):
		return state.Runner{}, err
	}
	return r, nil
}

// conclusionReason keeps a job's non-success conclusion on record.
func conclusionReason(c string) string {
	if c == "" || c == "success" {
		return ""
	}
	return "conclusion: " + c
}
