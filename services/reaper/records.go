package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/relaunch"
	"github.com/spotrunner/spotrunner/libs/state"
)

// records makes the table agree with the cloud again, in this order:
//
//  1. unregistered runners (no RunnerID) idle whose instance is gone: slot back, done (the
//     registered ones are registrations', which asks GitHub first);
//  2. launched jobs whose runner is busy with another job, done or dead: relaunched through the
//     shared path (libs/relaunch), unless GitHub says the job started or ended; a done runner
//     still holding a slot gives it back here;
//  3. jobs provisioning that hold a slot for a launch nobody finishes (the lease ended over
//     abandonAfter ago: the message is in the DLQ) and have no live instance: slot back;
//  4. slot counters: recounted from the holders and repaired where they drifted.
//
// A done runner item leaves the phase index, so no bounded read finds one still holding a slot.
// None is left by the reaper, which gives a slot back before it marks a runner done; one left by
// a crash elsewhere is released when a launched job still names it (2), and in any case no longer
// counts once the counters are recounted from the live holders (4).
func (rp *Reaper) records(ctx context.Context, r *pass) error {
	return errors.Join(
		rp.retireUnregistered(ctx, r),
		rp.relaunchUncovered(ctx, r),
		rp.giveBackAbandoned(ctx, r),
		rp.repairSlotCounters(ctx, r),
	)
}

const recordsStep = "records"

// abandonAfter is how long after its lease ended a provisioning job holding a slot has surely been
// given up by the provisioner: its message is received at least every visibility timeout or
// backoff (minutes), each receive claims the job anew, so an hour without a claim means the
// message went to the DLQ. A redrive claims the job and takes a slot again.
const abandonAfter = time.Hour

// retireUnregistered: idle runners never registered (no RunnerID) whose instance is gone.
func (rp *Reaper) retireUnregistered(ctx context.Context, r *pass) error {
	return rp.eachInPhase(ctx, r, state.PhaseIdle, func(pk string) error {
		run, err := rp.runnerOf(ctx, r, pk)
		if errors.Is(err, state.ErrNotFound) {
			return nil
		}
		if err != nil || run.RunnerID != 0 || run.State != state.Idle {
			return err
		}
		ctx := logging.WithInstance(ctx, run.InstanceID)
		gone, why, err := rp.instanceGone(ctx, run.InstanceID, run.LaunchedAt)
		if err != nil || !gone {
			return err
		}
		logging.From(ctx).Debug().Str("instance", why).Msg("reaper: unregistered runner's instance is gone")
		_, err = rp.retire(ctx, r, recordsStep, run, []state.RunnerState{state.Idle}, 0, false)
		return err
	})
}

// relaunchUncovered: launched jobs whose runner will never run them.
func (rp *Reaper) relaunchUncovered(ctx context.Context, r *pass) error {
	return rp.eachInPhase(ctx, r, state.PhaseLaunched, func(pk string) error {
		j, err := rp.jobOf(ctx, r, pk)
		if errors.Is(err, state.ErrNotFound) {
			return nil
		}
		if err != nil || j.State != state.Launched {
			return err
		}
		ctx := logging.WithJob(ctx, j.Host, j.ID)
		subject := "job " + j.Host + "/" + strconv.FormatInt(j.ID, 10)
		if j.InstanceID == "" {
			r.skip(ctx, recordsStep, subject, "launched but names no instance")
			return nil
		}
		why, run, err := rp.uncovered(ctx, j)
		if err != nil || why == "" {
			return err
		}
		var errs []error
		if run.State == state.Done && run.HoldsSlot {
			errs = append(errs, r.act(ctx, recordsStep, "release slot of done runner", run.InstanceID, func() error {
				return rp.releaseSlot(ctx, run.InstanceID)
			}))
		}
		t := githubapp.Target{InstallationID: j.InstallationID, Owner: j.Owner, Repo: j.Repo}
		switch status, err := rp.github.JobStatus(ctx, t, j.ID); {
		case err != nil:
			r.skip(ctx, recordsStep, subject+" ("+why+")", "GitHub: "+err.Error())
		case status == "in_progress" || status == "completed":
			r.skip(ctx, recordsStep, subject+" ("+why+")", "GitHub says it is "+status+": its own events move it")
		default:
			errs = append(errs, r.act(ctx, recordsStep, "relaunch job", subject+" ("+why+")", func() error {
				return relaunch.Job(ctx, rp.jobs, rp.requeue, j, "relaunched by the reaper: "+why)
			}))
		}
		return errors.Join(errs...)
	})
}

// uncovered says why launched job j's runner will never run it ("" when it still may), with the
// runner as read.
func (rp *Reaper) uncovered(ctx context.Context, j state.Job) (string, state.Runner, error) {
	run, err := rp.jobs.Runner(ctx, j.InstanceID)
	switch {
	case errors.Is(err, state.ErrNotFound):
		return "its runner " + j.InstanceID + " has no record", run, nil
	case err != nil:
		return "", run, err
	case run.BusyJobID == j.ID:
		return "", run, nil // it ran this very job: the job's own events move it
	case run.State == state.Done:
		return "its runner " + j.InstanceID + " is done", run, nil
	case run.State == state.Busy:
		return fmt.Sprintf("its runner %s is busy with job %d", j.InstanceID, run.BusyJobID), run, nil
	}
	gone, why, err := rp.instanceGone(ctx, j.InstanceID, run.LaunchedAt)
	if err != nil || !gone {
		return "", run, err
	}
	return "its runner's instance " + j.InstanceID + " is " + why, run, nil
}

// giveBackAbandoned: provisioning jobs holding a slot whose provisioner gave up.
func (rp *Reaper) giveBackAbandoned(ctx context.Context, r *pass) error {
	return rp.eachInPhase(ctx, r, state.PhaseWaiting, func(pk string) error {
		j, err := rp.jobOf(ctx, r, pk)
		if errors.Is(err, state.ErrNotFound) {
			return nil
		}
		if err != nil || j.State != state.Provisioning || !j.SlotHeld || rp.now().Sub(j.LeaseEnd()) < abandonAfter {
			return err
		}
		ctx := logging.WithJob(ctx, j.Host, j.ID)
		subject := fmt.Sprintf("job %s/%d (preset %s, lease ended %s)", j.Host, j.ID, j.Preset, j.LeaseEnd().UTC().Format(time.RFC3339))
		// A launch made but not recorded (a crash after CreateFleet) still runs on the slot: the
		// orphans step terminates the instance first.
		live, err := rp.fleet.Find(ctx, map[string]string{
			"spotrunner:job": j.Host + "/" + strconv.FormatInt(j.ID, 10), fleet.DeploymentTag: rp.cfg.Deployment,
		})
		if err != nil {
			return err
		}
		if len(live) > 0 {
			r.skip(ctx, recordsStep, subject, "instance "+live[0].ID+" launched for it still runs")
			return nil
		}
		err = r.act(ctx, recordsStep, "give back abandoned slot", subject, func() error {
			err := rp.jobs.GiveBackStaleSlot(ctx, j)
			if errors.Is(err, state.ErrCounterDrift) {
				// The flag is gone; the counters are recounted at the end of this step.
				logging.From(ctx).Warn().Err(err).Msg("reaper: slot counter drift")
				return nil
			}
			return err
		})
		if errors.Is(err, state.ErrConflict) {
			r.skip(ctx, recordsStep, subject, "claimed again meanwhile")
			return nil
		}
		return err
	})
}

// repairSlotCounters recounts the slots held — by jobs waiting or launched (slotHeld) and by
// runners idle or busy (holdsSlot) — and sets every counter that disagrees (CAP/total,
// CAP/preset#<name>) to the count, conditioned on the value read before counting: a launch or
// release meanwhile makes the write fail, and the next run counts again. Jobs are counted before
// runners, so a slot moving from its job to its runner during the count (RecordLaunch) is counted
// twice rather than missed: a counter set too high holds a slot back until the next run, one set
// too low would let a launch past a cap. A count cut short by the deadline, or with items it could
// not read, repairs nothing.
func (rp *Reaper) repairSlotCounters(ctx context.Context, r *pass) error {
	if r.late() {
		return nil
	}
	total, perPreset, err := rp.jobs.Slots(ctx)
	if err != nil {
		return err
	}
	held := map[string]int{}
	job := func(pk string) error {
		j, err := rp.jobOf(ctx, r, pk)
		if err == nil && j.SlotHeld {
			held[j.Preset]++
		}
		if errors.Is(err, state.ErrNotFound) {
			return nil
		}
		return err
	}
	runner := func(pk string) error {
		run, err := rp.runnerOf(ctx, r, pk)
		if err == nil && run.HoldsSlot && run.State != state.Done {
			held[run.Preset]++
		}
		if errors.Is(err, state.ErrNotFound) {
			return nil
		}
		return err
	}
	if err := errors.Join(
		rp.eachInPhase(ctx, r, state.PhaseWaiting, job),
		rp.eachInPhase(ctx, r, state.PhaseLaunched, job),
		rp.eachInPhase(ctx, r, state.PhaseIdle, runner),
		rp.eachInPhase(ctx, r, state.PhaseBusy, runner),
	); err != nil {
		return fmt.Errorf("count slots held (counters left as they are): %w", err)
	}
	if r.late() {
		r.skip(ctx, recordsStep, "slot counters", "the count was cut short by the deadline")
		return nil
	}
	heldTotal := 0
	for _, n := range held {
		heldTotal += n
	}
	var errs []error
	repair := func(preset, counter string, counted, n int) {
		if counted == n {
			return
		}
		subject := fmt.Sprintf("%s: counted %d, held %d", counter, counted, n)
		err := r.act(ctx, recordsStep, "repair slot counter", subject, func() error { return rp.jobs.SetSlotCount(ctx, preset, counted, n) })
		if errors.Is(err, state.ErrConflict) {
			r.skip(ctx, recordsStep, subject, "changed during the count; the next run counts again")
			return
		}
		errs = append(errs, err)
	}
	presets := maps.Clone(perPreset)
	for p := range held {
		presets[p] += 0
	}
	for _, p := range slices.Sorted(maps.Keys(presets)) {
		if p != "" { // a slot with no preset named is counted in the total only
			repair(p, "CAP/preset#"+p, perPreset[p], held[p])
		}
	}
	repair("", "CAP/total", total, heldTotal)
	return errors.Join(errs...)
}
