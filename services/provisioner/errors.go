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
		errors.Is(err, fleet.ErrLaunchConfig):
		return operator
	case errors.Is(err, fleet.ErrCapacity),
		errors.Is(err, fleet.ErrThrottled),
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

// errRefused: GitHub refused this installation's runners a moment ago (refusals).
var errRefused = errors.New("github refused runner registration recently")

// refusals remembers installations whose runner registration GitHub refused, so the retries
// that carry such a job to the DLQ do not each launch and terminate an instance.
type refusals struct {
	mu   sync.Mutex
	last map[int64]refusal
}

type refusal struct {
	at    time.Time
	cause string
}

func (h *Handler) refused(installationID int64, cause error) {
	h.refusals.mu.Lock()
	defer h.refusals.mu.Unlock()
	if h.refusals.last == nil {
		h.refusals.last = map[int64]refusal{}
	}
	h.refusals.last[installationID] = refusal{at: h.now(), cause: cause.Error()}
}

func (h *Handler) refusedRecently(installationID int64) error {
	h.refusals.mu.Lock()
	defer h.refusals.mu.Unlock()
	r, ok := h.refusals.last[installationID]
	if !ok || h.now().Sub(r.at) > refusalMemory {
		return nil
	}
	return fmt.Errorf("installation %d: %w (%s ago): %s", installationID, errRefused, h.now().Sub(r.at).Round(time.Second), r.cause)
}

// refusalMemory is how long a refusal spares launches: long enough to cover the retries on the way
// to the DLQ, short enough that a fixed permission is used within minutes.
const refusalMemory = 5 * time.Minute
