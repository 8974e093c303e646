package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/libs/state"
)

// TestOverTime (local world; this rig's deployment and another one): runners launched at t0 for
// jobs 201-206 with the preset's one-hour timeout, one more five minutes later for 207; overTime
// runs at t0 + 1 h 11 min, past the first ones' deadline plus GRACE (10 min).
//   - idle (201): never took a job: done, terminated, slot freed; its job is not relaunched and
//     its registration is left to the registrations step.
//   - busy (202): still running its job: done, terminated, slot freed; the job is left to its
//     completed event.
//   - instance gone (203): shut itself down already: done, slot freed.
//   - other deployment (204): tagged with another deployment: untouched.
//   - busy on GitHub (205): took its job on GitHub, the event not processed yet: done,
//     terminated, slot freed (the deadline is the instance's, whatever it runs).
//   - done (206): its job completed, the instance failed to shut down: not a runner any more, left
//     to the orphans step.
//   - within grace (207): six minutes past its deadline: untouched.
func TestOverTime(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	mine, other := r.ownStack()
	fx := map[string]fixture{}
	for name, id := range map[string]int64{"idle": 201, "busy": 202, "instance gone": 203, "busy on GitHub": 205, "done": 206} {
		fx[name] = fixture{r.launchedIn(id, mine), id}
	}
	fx["other deployment"] = fixture{r.launchedIn(204, other), 204}
	r.startedHere(fx["busy"].iid, 202)
	r.killInstance(fx["instance gone"].iid)
	r.takeJob(fx["busy on GitHub"].iid, 205)
	r.startedHere(fx["done"].iid, 206)
	r.finishedHere(fx["done"].iid, 206)
	r.now = r.now.Add(5 * time.Minute)
	fx["within grace"] = fixture{r.launchedIn(207, mine), 207}
	r.now = r.now.Add(time.Hour + 6*time.Minute)

	if _, err := r.runOnly(r.rp.overTime); err != nil {
		t.Fatal(err)
	}
	want := map[string]outcome{
		"idle":             {Registered: true, Runner: state.Done, Job: state.Launched},
		"busy":             {Registered: true, Runner: state.Done, Job: state.Running},
		"instance gone":    {Registered: true, Runner: state.Done, Job: state.Launched},
		"other deployment": untouched,
		"busy on GitHub":   {Registered: true, Runner: state.Done, Job: state.Launched},
		"done":             {Live: true, Runner: state.Done, Job: state.Completed},
		"within grace":     untouched,
	}
	if diff := cmp.Diff(want, r.outcomes(fx)); diff != "" {
		t.Errorf("after overTime (-want +got):\n%s", diff)
	}
}

// TestOverTimeDryRun (local world, DRY_RUN): an idle runner and a busy one (jobs 211, 212) past
// their deadline plus GRACE. overTime changes nothing and counts two done marks, terminations and
// slot releases.
func TestOverTimeDryRun(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	mine, _ := r.ownStack()
	fx := map[string]fixture{"idle": {r.launchedIn(211, mine), 211}, "busy": {r.launchedIn(212, mine), 212}}
	r.startedHere(fx["busy"].iid, 212)
	r.now = r.now.Add(2 * time.Hour)
	r.rp.cfg.DryRun = true
	p, err := r.runOnly(r.rp.overTime)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]outcome{
		"idle": untouched,
		"busy": {Live: true, Registered: true, Runner: state.Busy, Slot: true, Job: state.Running},
	}
	if diff := cmp.Diff(want, r.outcomes(fx)); diff != "" {
		t.Errorf("dry run changed (-want +got):\n%s", diff)
	}
	wantCounts := map[string]int{"overTime.would retire runner": 2, "overTime.would terminate instance": 2}
	if diff := cmp.Diff(wantCounts, p.counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}
