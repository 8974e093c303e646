package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/presets"
	"github.com/spotrunner/spotrunner/libs/secrets"
	"github.com/spotrunner/spotrunner/libs/state"
)

// class is how a failure is handled; decided here and nowhere else.
type class int

const (
	// transient: report the batch item failed and back off with ChangeMessageVisibility.
	transient class = iota
	// operator: fail the item and retry at a fixed pause; after maxReceiveCount it lands in the
	// DLQ, where `spotrunner dlq redrive` puts it back once the operator fixed the cause.
	operator
)

// Waits that are not failures: the job is retried with backoff.
var (
	errBusy  = errors.New("another worker holds the job")
	errNoAMI = errors.New("preset has no AMI yet")
)

// classify sorts a provisioning error. User errors never get here: they are recorded as a
// rejected job and acknowledged.
func classify(err error) class {
	switch {
	case errors.Is(err, githubapp.ErrNotInstalled),
		errors.Is(err, githubapp.ErrForbidden),
		errors.Is(err, githubapp.ErrBadPrivateKey),
		errors.Is(err, githubapp.ErrInvalid),
		errors.Is(err, githubapp.ErrNotFound), // an org or repo the App cannot see
		errors.Is(err, errRefused),
		errors.Is(err, secrets.ErrNotFound),
		errors.Is(err, presets.ErrBroken),
		errors.Is(err, fleet.ErrUnauthorized), // an IAM denial, never "no capacity"
		errors.Is(err, fleet.ErrLaunchConfig):
		return operator
	case errors.Is(err, fleet.ErrTokenReused), // the next try has a new token
		errors.Is(err, state.ErrContention),
		errors.Is(err, fleet.ErrCapacity),
		errors.Is(err, fleet.ErrThrottled),
		errors.Is(err, fleet.ErrImageGone), // the AMI is forgotten: the retry uses the previous one, or waits
		errors.Is(err, githubapp.ErrRateLimited),
		errors.Is(err, githubapp.ErrUnavailable),
		errors.Is(err, state.ErrCapReached),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, errBusy), errors.Is(err, errNoAMI):
		return transient
	}
	// Unknown AWS or network failures: retrying is the safe side; a message that keeps failing
	// reaches the DLQ all the same.
	return transient
}

// permanentRegistration reports a GitHub answer to a registration that a retry will not change:
// the instance launched for it is terminated (registrationFailed).
func permanentRegistration(err error) bool {
	return errors.Is(err, githubapp.ErrForbidden) || errors.Is(err, githubapp.ErrInvalid) ||
		errors.Is(err, githubapp.ErrNotInstalled) || errors.Is(err, githubapp.ErrNotFound)
}

// errRefused: GitHub refused runner registrations for this target a moment ago (refusals).
var errRefused = errors.New("github refused runner registration recently")

// refusals remembers where GitHub refused a runner registration (403, 404, App not installed), per
// target (installation + org, or + repo for a user's repository), so that the retries carrying such
// a job to the DLQ do not each launch and terminate an instance. A refusal is forgotten after
// refusalMemory or at the target's next accepted registration; other targets of the same
// installation are never held back by it.
type refusals struct {
	mu   sync.Mutex
	last map[githubapp.Target]refusal
}

type refusal struct {
	at    time.Time
	cause string
}

func (h *Handler) refused(t githubapp.Target, cause error) {
	h.refusals.mu.Lock()
	defer h.refusals.mu.Unlock()
	if h.refusals.last == nil {
		h.refusals.last = map[githubapp.Target]refusal{}
	}
	h.refusals.last[t] = refusal{at: h.now(), cause: cause.Error()}
}

// accepted forgets a refusal for t: GitHub took a registration there.
func (h *Handler) accepted(t githubapp.Target) {
	h.refusals.mu.Lock()
	defer h.refusals.mu.Unlock()
	delete(h.refusals.last, t)
}

// refusedRecently is errRefused, saying when and why, while a refusal for t is remembered.
func (h *Handler) refusedRecently(t githubapp.Target) error {
	h.refusals.mu.Lock()
	defer h.refusals.mu.Unlock()
	r, ok := h.refusals.last[t]
	if !ok {
		return nil
	}
	age := h.now().Sub(r.at)
	if age > refusalMemory {
		delete(h.refusals.last, t)
		return nil
	}
	return fmt.Errorf("%s: %w %s ago, no launch for another %s: %s", targetName(t), errRefused, age.Round(time.Second), (refusalMemory - age).Round(time.Second), r.cause)
}

// refusalMemory bounds how long one refusal spares launches for its target: about two operator
// retries, so a fixed permission is used within a minute.
const refusalMemory = time.Minute

func targetName(t githubapp.Target) string {
	name := fmt.Sprintf("installation %d, %s", t.InstallationID, t.Owner)
	if t.Repo != "" {
		name += "/" + t.Repo
	}
	return name
}
