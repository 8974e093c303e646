package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spotrunner/spotrunner/libs/githubapp"
)

// Deliveries lists the App's webhook deliveries and redelivers one (githubapp.App).
type Deliveries interface {
	// Deliveries returns the deliveries at or after since, newest first.
	Deliveries(ctx context.Context, since time.Time) ([]githubapp.Delivery, error)
	Redeliver(ctx context.Context, id int64) error
}

const (
	// missedWindow is how far back failed deliveries are redelivered: long enough for an outage of
	// the webhook endpoint to be caught up by the runs after it, short enough that a job GitHub
	// already gave up on is not started again.
	missedWindow = time.Hour
	// redeliveryClaim is how long a redelivery claim lives: past missedWindow, so that no run can
	// see a delivery whose claim has gone.
	redeliveryClaim = 2 * time.Hour
)

// errRedelivered: the delivery's GUID was claimed already, by an earlier run or a concurrent one.
var errRedelivered = errors.New("redelivered before")

// missedWebhooks redelivers, once each, the failed deliveries of the last hour that a job may be
// waiting on: workflow_job, the original (a failed redelivery leads back to it: same GUID), and
// no attempt of its GUID taken since. Each is claimed in the state table before it is
// redelivered, so a second run, or two at once, redeliver nothing again. A GitHub that cannot list
// fails the step with nothing claimed; one failing while redelivering stops it, and the claims of
// what it did not take are given back for the next run.
func (rp *Reaper) missedWebhooks(ctx context.Context, r *pass) error {
	const step = "missedWebhooks"
	now := rp.now()
	found, err := rp.deliveries.Deliveries(ctx, now.Add(-missedWindow))
	if err != nil {
		return fmt.Errorf("list webhook deliveries: %w", err)
	}
	taken := map[string]bool{} // GUIDs of which some attempt reached the receiver
	for _, d := range found {
		if d.Succeeded() {
			taken[d.GUID] = true
		}
	}
	var errs []error
	for _, d := range found {
		if d.Succeeded() || d.Redelivery {
			continue
		}
		subject := fmt.Sprintf("delivery %d (%s %s, guid %s)", d.ID, d.Event, d.Action, d.GUID)
		switch {
		case d.Event != "workflow_job":
			r.skip(ctx, step, subject, "not a workflow_job event: no job waits on it")
			continue
		case taken[d.GUID]:
			r.skip(ctx, step, subject, "a redelivery of it was taken")
			continue
		}
		if r.late() {
			break // the next run sees the rest: the window outlasts several runs
		}
		err := r.act(ctx, step, "redeliver", subject, func() error { return rp.redeliver(ctx, d, now) })
		switch {
		case errors.Is(err, errRedelivered):
			r.skip(ctx, step, subject, "redelivered before")
		case githubPassing(err):
			return errors.Join(append(errs, err)...) // the rest waits for a GitHub that answers
		case err != nil:
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// redeliver claims d's GUID until the claim can no longer matter, then asks GitHub to redeliver d.
// A claim held already is errRedelivered. When GitHub did not take the request for a passing
// reason (5xx, no answer, rate limit), the claim is given back so that the next run tries again:
// should the request have reached GitHub after all, the job's webhook only comes twice, which
// ingest and the provisioner take as a duplicate, whereas a claim kept would leave the job
// waiting for a webhook nobody sends. Any other refusal (the delivery is gone, the App may not)
// keeps the claim: retrying cannot help, and the step's error says why.
func (rp *Reaper) redeliver(ctx context.Context, d githubapp.Delivery, now time.Time) error {
	won, err := rp.jobs.ClaimRedelivery(ctx, d.GUID, now.Add(redeliveryClaim))
	if err != nil {
		return err
	}
	if !won {
		return errRedelivered
	}
	err = rp.deliveries.Redeliver(ctx, d.ID)
	if !githubPassing(err) {
		return err
	}
	if rerr := rp.jobs.ReleaseRedelivery(ctx, d.GUID); rerr != nil {
		return fmt.Errorf("%w; claim kept: %w", err, rerr)
	}
	return err
}

// githubPassing reports a GitHub failure that the next run may not meet: GitHub unavailable or
// rate limiting.
func githubPassing(err error) bool {
	return errors.Is(err, githubapp.ErrUnavailable) || errors.Is(err, githubapp.ErrRateLimited)
}
