package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spotrunner/spotrunner/libs/state"
)

// overTime is the backstop of the bootstrap's own time limit: a runner, idle or busy, still there
// Grace after its deadline (the preset's timeout from launch) is marked done, its instance
// terminated and its slot freed. Its job is not relaunched: it had its time. The registration
// is left to the registrations step, which deletes it once the instance is gone.
func (rp *Reaper) overTime(ctx context.Context, r *pass) error {
	const step = "overTime"
	return rp.eachRunner(ctx, r, step, []string{state.PhaseIdle, state.PhaseBusy}, func(ctx context.Context, run state.Runner) error {
		if run.State == state.Done {
			return nil
		}
		if run.Deadline.IsZero() {
			r.skip(ctx, step, run.InstanceID, "no deadline on record")
			return nil
		}
		if !run.Deadline.Add(rp.cfg.Grace).Before(rp.now()) {
			return nil
		}
		alive, why, err := rp.ownInstance(ctx, run.InstanceID)
		if err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		if why != "" {
			r.skip(ctx, step, run.InstanceID, why)
			return nil
		}
		err = r.act(ctx, step, "mark runner done", run.InstanceID, func() error {
			_, err := rp.jobs.UpdateRunner(ctx, run.InstanceID, []state.RunnerState{state.Idle, state.Busy}, state.Done, state.RunnerChange{})
			return err
		})
		if errors.Is(err, state.ErrConflict) {
			r.skip(ctx, step, run.InstanceID, "its record ended since it was read: the orphans step terminates what is left")
			return nil
		}
		if err != nil {
			return err
		}
		return rp.retire(ctx, r, step, run, alive)
	})
}
