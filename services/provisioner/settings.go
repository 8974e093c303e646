package main

import (
	"time"

	"github.com/spotrunner/spotrunner/libs/state"
)

// Settings are the provisioner's knobs, from its Config.
type Settings struct {
	Deployment    string // this stack's name (spotrunner:deployment)
	SubnetIDs     []string
	MaxRunners    int // total cap; 0 = none
	RunnerGroupID int64
	NoAMIWait     time.Duration
	Lease         time.Duration
	// ConfigDeadline: an instance with no runner registered this long after its launch is given
	// up and replaced; shorter than the bootstrap's wait for its config (docs/provisioning.md).
	ConfigDeadline time.Duration
	// RecordBudget: a batch stops starting records when less time than this is left before the
	// function's deadline; the rest are reported as failures and come again.
	RecordBudget time.Duration
	Partition    string
	Region       string
	AccountID    string
}

// Handler is the provisioner: the SQS batch handler and the job state machine behind it.
type Handler struct {
	jobs       *state.Store
	presets    Presets
	fleet      Launcher
	github     Registrar
	jit        JITStore
	requeue    Publisher
	visibility Visibility
	queueURL   string
	backoff    Backoff
	now        func() time.Time
	cfg        Settings
	refusals   refusals
}
