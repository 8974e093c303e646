package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/state"
)

// registrations deregisters the runners of ours on GitHub whose instance is gone: runner items
// idle or busy, registered (a RunnerID recorded), whose instance is terminated, shutting down or
// unknown to EC2. GitHub is asked first and has the last word: a runner it shows busy or online
// is never deleted (GitHub takes minutes to see a dead runner offline, and its 422 on delete
// means busy); a runner launched less than REGISTRATION_LAG ago is left for a later run. Once
// GitHub no longer has the runner (deleted now, or before), the item is done and its slot goes
// back. A GitHub error leaves the runner as it is, to the next run; once GitHub is unavailable or
// rate-limiting, the rest of the step asks it nothing more.
//
// Runners without a RunnerID were never registered as far as the record knows: records gives
// them up (the provisioner adopts a registration whose id it failed to record on its retry).
func (rp *Reaper) registrations(ctx context.Context, r *pass) error {
	const step = "registrations"
	var down error // GitHub unavailable or rate-limited: ask no more in this run
	deregister := func(pk string) error {
		run, err := rp.runnerOf(ctx, r, pk)
		if errors.Is(err, state.ErrNotFound) {
			return nil
		}
		if err != nil || run.RunnerID == 0 || run.State == state.Done {
			return err
		}
		ctx := logging.WithInstance(ctx, run.InstanceID)
		gone, why, err := rp.instanceGone(ctx, run.InstanceID, run.LaunchedAt)
		if err != nil || !gone {
			return err
		}
		subject := fmt.Sprintf("runner %s (id %d, instance %s)", run.RunnerName, run.RunnerID, why)
		if age := rp.now().Sub(run.LaunchedAt); age < rp.cfg.RegistrationLag {
			r.skip(ctx, step, subject, fmt.Sprintf("launched %s ago, within REGISTRATION_LAG: GitHub may not show it offline yet", age.Round(time.Second)))
			return nil
		}
		if down != nil {
			r.skip(ctx, step, subject, "GitHub failed earlier in this run: "+down.Error())
			return nil
		}
		t := githubapp.Target{InstallationID: run.InstallationID, Owner: run.Owner, Repo: run.Repo}
		gh, found, err := rp.github.RunnerByName(ctx, t, run.RunnerName)
		if err != nil {
			down = unavailable(err)
			r.skip(ctx, step, subject, "GitHub: "+err.Error())
			return nil
		}
		switch {
		case found && gh.Busy:
			r.skip(ctx, step, subject, "GitHub says it is busy")
			return nil
		case found && gh.Status != "offline":
			r.skip(ctx, step, subject, "GitHub says it is "+gh.Status)
			return nil
		case found:
			err := r.act(ctx, step, "deregister runner", subject, func() error { return rp.github.DeleteRunner(ctx, t, gh.ID) })
			if errors.Is(err, githubapp.ErrInvalid) {
				r.skip(ctx, step, subject, "GitHub refused to delete it (422): it took a job")
				return nil
			}
			if err != nil {
				down = unavailable(err)
				r.skip(ctx, step, subject, "GitHub: "+err.Error())
				return nil
			}
		}
		_, err = rp.retire(ctx, r, step, run, []state.RunnerState{state.Idle, state.Busy}, 0, false)
		return err
	}
	return errors.Join(
		rp.eachInPhase(ctx, r, state.PhaseIdle, deregister),
		rp.eachInPhase(ctx, r, state.PhaseBusy, deregister),
	)
}

// unavailable returns err when it says GitHub as a whole cannot answer now (down, timing out,
// rate-limiting), nil for a failure of one runner or one installation.
func unavailable(err error) error {
	if errors.Is(err, githubapp.ErrUnavailable) || errors.Is(err, githubapp.ErrRateLimited) {
		return err
	}
	return nil
}

// releaseSlot gives back the slot runner instanceID holds, if any. Counters already at zero are
// drift, not a failure: the flag is gone, and records recounts the counters at the end of the run.
func (rp *Reaper) releaseSlot(ctx context.Context, instanceID string) error {
	err := rp.jobs.ReleaseSlot(ctx, instanceID)
	if errors.Is(err, state.ErrCounterDrift) {
		logging.From(ctx).Warn().Err(err).Msg("reaper: slot counter drift")
		return nil
	}
	return err
}

// instanceGone reports whether instance id is gone for good: terminated or shutting down, or
// unknown to EC2 — but an instance EC2 does not list yet is not gone: DescribeInstances is
// eventually consistent right after a launch, so unknown counts only once launchedAt (its record's
// launch; zero when there is none) is REGISTRATION_LAG old. why says which, for the logs.
func (rp *Reaper) instanceGone(ctx context.Context, id string, launchedAt time.Time) (gone bool, why string, err error) {
	inst, found, err := rp.fleet.Lookup(ctx, id)
	switch {
	case err != nil:
		return false, "", err
	case !found:
		return rp.now().Sub(launchedAt) >= rp.cfg.RegistrationLag, "not found", nil
	case inst.State == "terminated", inst.State == "shutting-down":
		return true, inst.State, nil
	}
	return false, inst.State, nil
}

// eachInPhase calls fn with the key of every item in phase, a page at a time, until the run is
// late. fn's errors are collected and the walk goes on; fn may move the item out of the phase.
func (rp *Reaper) eachInPhase(ctx context.Context, r *pass, phase string, fn func(pk string) error) error {
	var errs []error
	for after := ""; ; {
		pks, next, err := rp.jobs.Phase(ctx, phase, after)
		if err == nil {
			err = rp.readPage(ctx, r, pks)
		}
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, pk := range pks {
			if r.late() {
				return errors.Join(errs...)
			}
			if err := fn(pk); err != nil {
				errs = append(errs, err)
			}
		}
		if next == "" {
			return errors.Join(errs...)
		}
		after = next
	}
}

// pageFresh is how long a page's batch read stands for a strongly consistent read of each item:
// an item whose turn comes later (the steps call EC2 and GitHub per item) is read again. Every
// write the steps make is conditioned on the state read, so an older read only costs a skip.
const pageFresh = 5 * time.Second

// readPage reads a phase page's items in one batch (a page is 100 keys: one BatchGetItem instead
// of 100 GetItems) for jobOf and runnerOf to hand out.
func (rp *Reaper) readPage(ctx context.Context, r *pass, pks []string) error {
	var err error
	r.pageJobs, r.pageRunners, err = rp.jobs.ItemsOf(ctx, pks)
	r.pageRead = time.Now()
	return err
}

// jobOf is the job of pk from the page read (once), or read now; ErrNotFound when it is gone.
func (rp *Reaper) jobOf(ctx context.Context, r *pass, pk string) (state.Job, error) {
	if j, ok := r.pageJobs[pk]; ok && time.Since(r.pageRead) < pageFresh {
		delete(r.pageJobs, pk)
		return j, nil
	}
	return rp.jobs.JobOf(ctx, pk)
}

// runnerOf is jobOf for a runner.
func (rp *Reaper) runnerOf(ctx context.Context, r *pass, pk string) (state.Runner, error) {
	if run, ok := r.pageRunners[pk]; ok && time.Since(r.pageRead) < pageFresh {
		delete(r.pageRunners, pk)
		return run, nil
	}
	return rp.jobs.RunnerOf(ctx, pk)
}
