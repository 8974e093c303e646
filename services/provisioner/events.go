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
// corrected.
func (h *Handler) started(ctx context.Context, m queue.Message) (string, error) {
	job, created, err := h.jobs.CreateJob(ctx, jobFrom(m), state.Running)
	if err != nil {
		return "", err
	}
	if !created {
		job, err = h.jobs.Transition(ctx, m.Host, m.JobID, []state.JobState{state.Queued, state.Provisioning, state.Launched}, state.Running,
			state.Change{RunnerName: m.RunnerName})
		if errors.Is(err, state.ErrConflict) {
			return "duplicate: job is " + string(job.State), nil
		}
		if err != nil {
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
	case errors.Is(err, state.ErrConflict), errors.Is(err, state.ErrNotFound):
		return "running", nil // a redelivery, or a runner we never recorded
	case err != nil:
		return "", err
	}
	if r.JobID == m.JobID && job.InstanceID == iid {
		return "running", nil
	}
	return "running on a runner launched for job " + itoa(r.JobID), h.reconcile(ctx, m.Host, job.LabelSet)
}

// finished handles completed: the job ends (cancelled when it never started) and its runner is
// done. A job cancelled before it started leaves a runner with nothing to take: count again.
func (h *Handler) finished(ctx context.Context, m queue.Message) (string, error) {
	to := state.Completed
	if m.Conclusion == "cancelled" && m.RunnerName == "" {
		to = state.Cancelled
	}
	job, created, err := h.jobs.CreateJob(ctx, jobFrom(m), to)
	if err != nil {
		return "", err
	}
	if !created {
		job, err = h.jobs.Transition(ctx, m.Host, m.JobID, []state.JobState{state.Queued, state.Provisioning, state.Launched, state.Running}, to,
			state.Change{RunnerName: m.RunnerName, Reason: conclusionReason(m.Conclusion)})
		if errors.Is(err, state.ErrConflict) {
			return "duplicate: job is " + string(job.State), nil
		}
		if err != nil {
			return "", err
		}
	}
	if to == state.Completed {
		if err := h.jobs.CountActivity(ctx, h.now(), state.ActivityCompleted); err != nil {
			logging.From(ctx).Warn().Err(err).Msg("count completed job")
		}
	}
	if iid, ours := instanceOf(m.RunnerName); ours {
		if err := h.retire(ctx, iid); err != nil {
			return "", err
		}
	}
	if to == state.Cancelled {
		return "cancelled before start", h.reconcile(ctx, m.Host, job.LabelSet)
	}
	return string(to), nil
}

// retire marks a runner done and frees its cap slot; the instance shuts itself down.
func (h *Handler) retire(ctx context.Context, instanceID string) error {
	r, err := h.jobs.UpdateRunner(ctx, instanceID, []state.RunnerState{state.Idle, state.Busy}, state.Done, state.RunnerChange{})
	switch {
	case errors.Is(err, state.ErrConflict), errors.Is(err, state.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	return h.jobs.ReleaseSlot(ctx, instanceID, h.cfg.MaxRunners, h.presetCap(ctx, r.Preset))
}

// conclusionReason keeps a job's non-success conclusion on record.
func conclusionReason(c string) string {
	if c == "" || c == "success" {
		return ""
	}
	return "conclusion: " + c
}
