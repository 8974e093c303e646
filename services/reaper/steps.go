package main

import "context"

// step is one named reconcile step.
type step struct {
	name string
	run  func(ctx context.Context, r *pass) error
}

// steps are the pass, in order (the package comment in main.go says what each does).
func (rp *Reaper) steps() []step {
	return []step{
		{"stuckLaunches", rp.stuckLaunches},
		{"overTime", rp.overTime},
		{"orphans", rp.orphans},
		{"registrations", rp.registrations},
		{"jitParameters", rp.jitParameters},
		{"records", rp.records},
		{"missedWebhooks", rp.missedWebhooks},
		{"expiry", rp.expiry},
	}
}

// Params lists and deletes JIT configs waiting in SSM (/spotrunner/<deployment>/jit/<instance id>) of this
// deployment.
type Params interface {
	JITInstances(ctx context.Context) ([]string, error)
	DeleteJIT(ctx context.Context, instanceID string) error
}
