package main

import (
	"context"

	"github.com/spotrunner/spotrunner/libs/logging"
)

// expiry has nothing to change, by construction: every item meant to expire gets its TTL
// (expiresAt) in the very write that finishes or creates it — a job moved to, or created in,
// completed, rejected, failed or cancelled (state.Transition, CreateJob), a runner moved to done
// (UpdateRunner), an hour's activity counters (CountActivity), a redelivery claim
// (ClaimRedelivery). TestExpiry holds libs/state to that, path by path. Looking for items that
// missed it anyway would need a Scan: finished jobs and runners leave the phase index with the
// write that finishes them, so no bounded query lists them. Presets and slot counters never
// expire. The step stays in the pass the package comment lists, and changes and counts nothing.
func (rp *Reaper) expiry(ctx context.Context, r *pass) error {
	logging.From(ctx).Debug().Str("step", "expiry").Msg("finished items carry their TTL from their final transition")
	return nil
}
