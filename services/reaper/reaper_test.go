package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/libs/state"
)

// TestPassWhole (local world): one recorded world with a runner stuck past STUCK_AFTER (job 1)
// and a runner past its deadline (job 2). A dry run changes nothing (same live instances, same
// runners on GitHub, same slots); two reapers at once then leave exactly what one would (both
// instances gone, both runners deregistered, slots back to zero); a run whose deadline has
// already come does nothing and the next run does the work.
func TestPassWhole(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	_, stuck := r.launched(1)
	_, late := r.launched(2)
	ctx := context.Background()
	if _, err := r.store.UpdateRunner(ctx, late, []state.RunnerState{state.Idle}, state.Busy, state.RunnerChange{BusyJobID: 2}); err != nil {
		t.Fatal(err)
	}
	r.now = r.now.Add(90 * time.Minute) // past STUCK_AFTER for 1, past deadline + grace for 2

	before := r.live()
	slotsBefore, _, _ := r.store.Slots(ctx)
	r.rp.cfg.DryRun = true
	r.run()
	r.rp.cfg.DryRun = false
	if diff := cmp.Diff(before, r.live()); diff != "" {
		t.Errorf("dry run changed the live instances (-before +after):\n%s", diff)
	}
	if n, _, _ := r.store.Slots(ctx); n != slotsBefore {
		t.Errorf("dry run changed the slots: %d, want %d", n, slotsBefore)
	}

	// Cut off: a deadline inside the margin starts nothing.
	cut, cancel := context.WithTimeout(ctx, r.rp.cfg.Margin/2)
	if err := r.rp.Run(cut); err != nil {
		t.Fatal(err)
	}
	cancel()
	if diff := cmp.Diff(before, r.live()); diff != "" {
		t.Errorf("a run past its deadline changed the live instances (-before +after):\n%s", diff)
	}

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			c, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			if err := r.rp.Run(c); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	live := r.live()
	if live[stuck] || live[late] {
		t.Errorf("live instances %v, want the stuck and the late one gone", live)
	}
	if n, _, _ := r.store.Slots(ctx); n != 0 {
		t.Errorf("%d slots counted, want 0", n)
	}
	for _, iid := range []string{stuck, late} {
		if ri, err := r.store.Runner(ctx, iid); err != nil || ri.State != state.Done {
			t.Errorf("runner %s is %s (%v), want done", iid, ri.State, err)
		}
	}
}
