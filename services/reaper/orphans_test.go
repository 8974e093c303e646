package main

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/libs/state"
)

// TestOrphans (local world; this rig's deployment, another one, and instances not ours). The old
// instances are launched first, the young ones a moment later; orphans runs when the old ones are
// exactly ORPHAN_AFTER old and the young ones just under it.
//   - untracked (301): ours, no runner record (the provisioner crashed before recording it):
//     terminated.
//   - done (302): its job completed and its runner is done, but the instance lives on: terminated.
//   - idle (303), busy (304): ours and tracked: untouched.
//   - other deployment (305): tagged managed, with another deployment, no record here: untouched.
//   - not managed (306): our tags but spotrunner:managed, no record: untouched.
//   - untagged: no tag at all: untouched.
//   - young untracked (307), young done (308): a launch may be being recorded: untouched.
func TestOrphans(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	mine, other := r.ownStack()
	fx := map[string]fixture{
		"untracked":        {r.instance(r.tags(301, mine)), 0},
		"done":             {r.launchedIn(302, mine), 302},
		"idle":             {r.launchedIn(303, mine), 303},
		"busy":             {r.launchedIn(304, mine), 304},
		"other deployment": {r.instance(r.tags(305, other)), 0},
		"untagged":         {r.instance(nil), 0},
	}
	notManaged := r.tags(306, mine)
	delete(notManaged, "spotrunner:managed")
	fx["not managed"] = fixture{r.instance(notManaged), 0}
	r.startedHere(fx["done"].iid, 302)
	r.finishedHere(fx["done"].iid, 302)
	r.startedHere(fx["busy"].iid, 304)
	old := r.launchTimes(fx)
	time.Sleep(1100 * time.Millisecond) // EC2 launch times are in whole seconds
	fx["young untracked"] = fixture{r.instance(r.tags(307, mine)), 0}
	fx["young done"] = fixture{r.launchedIn(308, mine), 308}
	r.startedHere(fx["young done"].iid, 308)
	r.finishedHere(fx["young done"].iid, 308)
	r.now = latest(old).Add(r.rp.cfg.OrphanAfter)

	if _, err := r.runOnly(r.rp.orphans); err != nil {
		t.Fatal(err)
	}
	want := map[string]outcome{
		"untracked":        {},
		"done":             {Runner: state.Done, Job: state.Completed},
		"idle":             untouched,
		"busy":             {Live: true, Registered: true, Runner: state.Busy, Slot: true, Job: state.Running},
		"other deployment": {Live: true},
		"not managed":      {Live: true},
		"untagged":         {Live: true},
		"young untracked":  {Live: true},
		"young done":       {Live: true, Runner: state.Done, Job: state.Completed},
	}
	if diff := cmp.Diff(want, r.outcomes(fx)); diff != "" {
		t.Errorf("after orphans (-want +got):\n%s", diff)
	}
}

// TestOrphansDryRun (local world, DRY_RUN): an old untracked instance of ours and an old one whose
// runner is done (jobs 311, 312). orphans terminates neither and counts both.
func TestOrphansDryRun(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	mine, _ := r.ownStack()
	fx := map[string]fixture{"untracked": {r.instance(r.tags(311, mine)), 0}, "done": {r.launchedIn(312, mine), 312}}
	r.startedHere(fx["done"].iid, 312)
	r.finishedHere(fx["done"].iid, 312)
	r.now = latest(r.launchTimes(fx)).Add(r.rp.cfg.OrphanAfter + time.Minute)
	r.rp.cfg.DryRun = true
	p, err := r.runOnly(r.rp.orphans)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]outcome{"untracked": {Live: true}, "done": {Live: true, Runner: state.Done, Job: state.Completed}}
	if diff := cmp.Diff(want, r.outcomes(fx)); diff != "" {
		t.Errorf("dry run changed (-want +got):\n%s", diff)
	}
	wantCounts := map[string]int{"orphans.would terminate untracked instance": 1, "orphans.would terminate instance of a done runner": 1}
	if diff := cmp.Diff(wantCounts, p.counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}

// launchTimes returns the fixtures' launch times as EC2 reports them.
func (r *rig) launchTimes(fx map[string]fixture) []time.Time {
	r.t.Helper()
	var out []time.Time
	for _, f := range fx {
		inst, found, err := r.fleet.Lookup(context.Background(), f.iid)
		if err != nil || !found {
			r.t.Fatalf("look up %s: found %v, %v", f.iid, found, err)
		}
		out = append(out, inst.LaunchedAt)
	}
	return out
}

func latest(ts []time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}
