package main

import (
	"context"
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
		_, err = rp.retire(ctx, r, step, run, []state.RunnerState{state.Idle, state.Busy}, 0, alive)
		return err
	})
}
