package main

import (
	"context"
	"errors"

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

// permanentRegistration reports a GitHub answer that a retry will not change: the instance
// launched for the job is terminated and the job fails with the reason.
func permanentRegistration(err error) bool {
	return errors.Is(err, githubapp.ErrForbidden) || errors.Is(err, githubapp.ErrInvalid) ||
		errors.Is(err, githubapp.ErrNotInstalled)
}
