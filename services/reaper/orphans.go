package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/state"
)

// orphans terminates the live instances of this deployment that no runner item accounts for:
// none was ever recorded (a provisioner that crashed between the launch and its record), or the
// record ended while the instance lives on (a failed terminate). An instance younger than
// OrphanAfter is left alone whatever its record says: its launch may be being recorded right now.
// Find asks EC2 for this deployment's managed instances only, so nothing else is ever looked at.
func (rp *Reaper) orphans(ctx context.Context, r *pass) error {
	const step = "orphans"
	live, err := rp.fleet.Find(ctx, map[string]string{fleet.ManagedTag: "true", fleet.DeploymentTag: rp.cfg.Deployment})
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	var errs []error
	for _, inst := range live {
		if r.late() {
			r.cutOff = append(r.cutOff, step)
			break
		}
		ctx := logging.WithInstance(ctx, inst.ID)
		run, err := rp.jobs.Runner(ctx, inst.ID)
		var what string
		switch {
		case errors.Is(err, state.ErrNotFound):
			what = "terminate untracked instance"
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", step, err))
			continue
		case run.State == state.Done:
			what = "terminate instance of a done runner"
		default:
			continue // a runner's, settled by the other steps
		}
		if age := rp.now().Sub(inst.LaunchedAt); age < rp.cfg.OrphanAfter {
			r.skip(ctx, step, inst.ID, fmt.Sprintf("launched %s ago, under ORPHAN_AFTER (%s): its launch may be being recorded",
				age.Round(time.Second), rp.cfg.OrphanAfter))
			continue
		}
		if err := r.act(ctx, step, what, inst.ID, func() error { return rp.fleet.Terminate(ctx, inst.ID) }); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
