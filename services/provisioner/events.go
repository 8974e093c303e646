package main

import (
	"context"
	"errors"

	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// started handles in_progress: the job runs on the runner GitHub names. When that runner was
// launched for another job, or the job had a runner of its own, the label set's count is
// corrected. Every step after the job's own transition is safe to repeat, and a retry of this
// event repeats them: a job already running is not a reason to skip them.
func (h *Handler) started(ctx context.Context, m queue.Message) (string, error) {
	job, created, err := h.jobs.CreateJob(ctx, jobFrom(m), state.Running)
	if err != nil {
		return "", err
	}
	if !created {
		job, err = h.jobs.Transition(ctx, m.Host, m.JobID, []state.JobState{state.Queued, state.Provisioning, state.Launched}, state.Running,
			state.Change{RunnerName: m.RunnerName})
		switch {
		case errors.Is(err, state.ErrConflict) && job.State != state.Running:
			return "duplicate: job is " + string(job.State), nil
		case err != nil && !errors.Is(err, state.ErrConflict):
			return "", err
		}
	}
	iid, ours := instanceOf(m.RunnerName)
	if !ours {
		// A job with our label ran elsewhere (a runner someone registered by hand): the job's own
		// runner, if any, is now spare.
		return "running on foreign runner " + m.RunnerName, h.reconcile(ctx, m.Host, job.LabelSet)
	}
	ctx = logging.WithInstance(ctx, iid)
	r, err := h.jobs.UpdateRunner(ctx, iid, []state.RunnerState{state.Idle}, state.Busy, state.RunnerChange{BusyJobID: m.JobID})
	switch {
	case errors.Is(err, state.ErrNotFound):
		return "running on unrecorded runner", h.reconcile(ctx, m.Host, job.LabelSet)
	case errors.Is(err, state.ErrConflict) && r.BusyJobID == m.JobID:
		// A retry of this event: the runner was marked before; the count may not have run.
	case err != nil:
		return "", err
	}
	if r.JobID == m.JobID && job.InstanceID == iid {
		return "running", nil
	}
	return "running on a runner launched for job " + itoa(r.JobID), h.reconcile(ctx, m.Host, job.LabelSet)
}

// finished handles completed: the job ends (cancelled when it was cancelled before it started)
// and its runner is done. A job that ended without ever running leaves its runner with nothing to
// take: count again. As in started, a retry repeats the follow-ups.
func (h *Handler) finished(ctx context.Context, m queue.Message) (string, error) {
	neverRan := m.RunnerName == ""
	to := state.Completed
	if neverRan && m.Conclusion == "cancelled" {
		to = state.Cancelled
	}
	job, created, err := h.jobs.CreateJob(ctx, jobFrom(m), to)
	if err != nil {
		return "", err
	}
	if !created {
		job, err = h.jobs.Transition(ctx, m.Host, m.JobID, []state.JobState{state.Queued, state.Provisioning, state.Launched, state.Running}, to,
			state.Change{RunnerName: m.RunnerName, Reason: conclusionReason(m.Conclusion)})
		switch {
		case errors.Is(err, state.ErrConflict) && job.State != to:
			return "duplicate: job is " + string(job.State), nil
		case err != nil && !errors.Is(err, state.ErrConflict):
			return "", err
		case err == nil && to == state.Completed:
			if err := h.jobs.CountActivity(ctx, h.now(), state.ActivityCompleted); err != nil {
				logging.From(ctx).Warn().Err(err).Msg("count completed job")
			}
		}
	}
	if job.SlotHeld && job.InstanceID == "" {
		// It ended while its launch was pending (a wait, a failed try): the slot goes back.
		if err := h.jobs.GiveBackSlot(ctx, job.Host, job.ID, job.Preset); err != nil {
			return "", err
		}
	}
	if iid, ours := instanceOf(m.RunnerName); ours {
		if err := h.retire(ctx, iid); err != nil {
			return "", err
		}
	}
	if neverRan {
		return string(to) + " before it started", h.reconcile(ctx, m.Host, job.LabelSet)
	}
	return string(to), nil
}

// retire marks a runner done and frees its cap slot; the instance shuts itself down.
func (h *Handler) retire(ctx context.Context, instanceID string) error {
	_, err := h.jobs.UpdateRunner(ctx, instanceID, []state.RunnerState{state.Idle, state.Busy}, state.Done, state.RunnerChange{})
	switch {
	case errors.Is(err, state.ErrNotFound):
		return nil
	case err != nil && !errors.Is(err, state.ErrConflict):
		return err
	}
	return h.jobs.ReleaseSlot(ctx, instanceID) // once, however often retire runs
}

// conclusionReason keeps a job's non-success conclusion on record.
func conclusionReason(c string) string {
	if c == "" || c == "success" {
		return ""
	}
	return "conclusion: " + c
}
