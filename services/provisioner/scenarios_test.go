package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// launched queues jobs with the default labels, provisions them and boots their runners; it
// returns each job's instance.
func (r *rig) launched(ids ...int64) map[int64]string {
	r.t.Helper()
	for _, id := range ids {
		r.send(r.msg(queue.ActionQueued, id))
	}
	r.drain(4)
	out := map[int64]string{}
	for _, id := range ids {
		j := r.job(id)
		if j.State != state.Launched {
			r.t.Fatalf("job %d is %s, want launched", id, j.State)
		}
		out[id] = j.InstanceID
		r.boot(j.InstanceID)
	}
	return out
}

// settled checks the end of a scenario: every job completed, no runner item idle or busy, no
// runner left on GitHub.
func (r *rig) settled(jobs []int64, runners []string) {
	r.t.Helper()
	for _, id := range jobs {
		if j := r.job(id); j.State != state.Completed && j.State != state.Cancelled {
			r.t.Errorf("job %d ended %s", id, j.State)
		}
	}
	for _, iid := range runners {
		if ri, err := r.store.Runner(context.Background(), iid); err != nil || ri.State != state.Done {
			r.t.Errorf("runner %s is %s (%v), want done", iid, ri.State, err)
		}
	}
	if left := r.sim.Runners(); len(left) != 0 {
		r.t.Errorf("runners left on GitHub: %+v", left)
	}
	r.countsAgree()
}

// TestStolenRunnerSwap (local world): jobs 1 and 2 (same labels) each get a runner; GitHub gives
// job 1 to job 2's runner. Job 2 is left without a runner while job 1's runner idles: the count
// rebinds that runner to job 2 — no launch, no termination — and GitHub gives it job 2.
func TestStolenRunnerSwap(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	inst := r.launched(1, 2)
	r.assign(1, inst[2])
	r.drain(2)
	if j := r.job(2); j.State != state.Launched || j.InstanceID != inst[1] {
		t.Fatalf("job 2 = %s on %s, want launched on job 1's runner %s", j.State, j.InstanceID, inst[1])
	}
	r.assign(2, inst[1])
	r.complete(1, inst[2], "success")
	r.complete(2, inst[1], "success")
	r.drain(3)
	if n := len(r.ec2.Calls()); n != 2 {
		t.Errorf("EC2 calls %v, want the two launches only", r.ec2.Calls())
	}
	r.settled([]int64{1, 2}, []string{inst[1], inst[2]})
}

// TestStolenRunnerRelaunch (local world): job 1's runner is taken by job 3, a job with the same
// labels whose queued event never reached us. Nothing idles to give job 1, so it is relaunched as
// attempt 1 through the queue, gets a second instance, and runs there.
func TestStolenRunnerRelaunch(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	inst := r.launched(1)
	r.sim.AddJob(toSimJob(r.msg(queue.ActionQueued, 3)))
	r.assign(3, inst[1])
	r.drain(4) // in_progress of 3, then the relaunch of 1
	j := r.job(1)
	if j.State != state.Launched || j.Attempt != 1 || j.InstanceID == "" || j.InstanceID == inst[1] {
		t.Fatalf("job 1 = %s attempt %d on %q, want relaunched on a new instance", j.State, j.Attempt, j.InstanceID)
	}
	r.boot(j.InstanceID)
	r.assign(1, j.InstanceID)
	r.complete(3, inst[1], "success")
	r.complete(1, j.InstanceID, "success")
	r.drain(3)
	r.settled([]int64{1, 3}, []string{inst[1], j.InstanceID})
}

// TestCancelledBeforeStart (local world): job 1 gets a runner, then is cancelled before any job
// started on it. The runner has nothing left to take: it is deregistered, its instance
// terminated, its slot freed.
func TestCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	inst := r.launched(1)
	r.complete(1, "", "cancelled")
	r.drain(2)
	if j := r.job(1); j.State != state.Cancelled {
		t.Errorf("job 1 is %s, want cancelled", j.State)
	}
	if live := r.instances(); len(live) != 0 {
		t.Errorf("live instances %+v, want the spare one terminated", live)
	}
	r.settled([]int64{1}, []string{inst[1]})
}

// TestCancelledThenStolen (local world): jobs 1 and 2 get runners. Job 1 is cancelled before it
// started while job 2 still has its own runner: by count nothing waits for job 1's runner, so it
// goes. Then job 5 (unknown to us) takes job 2's runner: nothing idles any more, so job 2 is
// relaunched and runs on the new instance. Every job ends served, no runner is left.
func TestCancelledThenStolen(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	inst := r.launched(1, 2)
	r.complete(1, "", "cancelled")
	r.drain(2)
	if ri, _ := r.store.Runner(context.Background(), inst[1]); ri.State != state.Done {
		t.Fatalf("job 1's spare runner is %s, want done (terminated)", ri.State)
	}
	r.sim.AddJob(toSimJob(r.msg(queue.ActionQueued, 5)))
	r.assign(5, inst[2])
	r.drain(4)
	j := r.job(2)
	if j.State != state.Launched || j.Attempt != 1 {
		t.Fatalf("job 2 = %s attempt %d, want relaunched", j.State, j.Attempt)
	}
	r.boot(j.InstanceID)
	r.assign(2, j.InstanceID)
	r.complete(5, inst[2], "success")
	r.complete(2, j.InstanceID, "success")
	r.drain(3)
	r.settled([]int64{1, 2, 5}, []string{inst[1], inst[2], j.InstanceID})
}

// TestRunnerCap (local world): with a total cap of one runner, the second job waits (retried, not
// dropped) until the first completes and frees its slot, then launches.
func TestRunnerCap(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.h.cfg.MaxRunners = 1
	r.send(r.msg(queue.ActionQueued, 1))
	r.send(r.msg(queue.ActionQueued, 2))
	r.drain(3)
	states := []state.JobState{r.job(1).State, r.job(2).State}
	if diff := cmp.Diff([]state.JobState{state.Launched, state.Queued}, states); diff != "" {
		t.Fatalf("states under the cap (-want +got):\n%s", diff)
	}
	if j := r.job(2); !strings.Contains(j.Reason, "runner cap reached") {
		t.Errorf("waiting job's reason %q", j.Reason)
	}
	first := r.job(1).InstanceID
	r.boot(first)
	r.assign(1, first)
	r.complete(1, first, "success")
	r.drain(4)
	if j := r.job(2); j.State != state.Launched {
		t.Errorf("job 2 is %s after the slot was freed, want launched", j.State)
	}
	if n := len(r.instances()); n != 2 {
		t.Errorf("%d instances, want 2", n)
	}
	if total := r.slots(); total != 1 {
		t.Errorf("%d slots counted, want 1 (job 2's runner)", total)
	}
}

// TestWaitDoesNotHoldUpEvents (local world): with a cap of one, job 2 waits; its cancellation
// arrives while it waits and is processed at once (the wait is not in the job's message group),
// the waiting retry then finds the job cancelled and launches nothing, and no slot is left.
func TestWaitDoesNotHoldUpEvents(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.h.cfg.MaxRunners = 1
	inst := r.launched(1)
	r.send(r.msg(queue.ActionQueued, 2))
	r.drain(1)
	if j := r.job(2); j.State != state.Queued {
		t.Fatalf("job 2 is %s, want waiting", j.State)
	}
	r.complete(2, "", "cancelled")
	r.assign(1, inst[1])
	r.complete(1, inst[1], "success")
	r.drain(6)
	if j := r.job(2); j.State != state.Cancelled {
		t.Errorf("job 2 is %s, want cancelled", j.State)
	}
	if n := len(r.ec2.Calls()); n != 1 {
		t.Errorf("EC2 calls %v, want job 1's launch only", r.ec2.Calls())
	}
	if total := r.slots(); total != 0 {
		t.Errorf("%d slots counted at the end, want 0", total)
	}
	r.settled([]int64{1, 2}, []string{inst[1]})
}

// TestAMIWait (local world): a preset mid-rebuild launches from its previous AMI; a preset with no
// AMI at all makes the job wait (retried) and, past the bound, fail with the reason on record.
func TestAMIWait(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	arm := r.world.Images["arm64"]
	if err := r.store.PutPresetImage(ctx, state.PresetImage{Name: "linux-arm64", Status: "building", PreviousAMIID: arm, UpdatedAt: r.now}); err != nil {
		t.Fatal(err)
	}
	r.send(r.msg(queue.ActionQueued, 1, "self-hosted", "spotrunner/linux-arm64"))
	r.drain(2)
	if j := r.job(1); j.State != state.Launched {
		t.Fatalf("job on a rebuilding preset is %s, want launched from the previous AMI", j.State)
	}

	if err := r.store.PutPresetImage(ctx, state.PresetImage{Name: "linux-arm64", Status: "building", UpdatedAt: r.now}); err != nil {
		t.Fatal(err)
	}
	r.send(r.msg(queue.ActionQueued, 2, "self-hosted", "spotrunner/linux-arm64"))
	r.drain(2)
	if j := r.job(2); j.State != state.Queued || !strings.Contains(j.Reason, "waiting") || !strings.Contains(j.Reason, "no AMI yet") {
		t.Errorf("waiting job = %s %q, want queued, waiting for an AMI", j.State, j.Reason)
	}
	r.now = r.now.Add(91 * time.Minute)
	r.drain(2)
	if j := r.job(2); j.State != state.Failed || !strings.Contains(j.Reason, "has no AMI after waiting 1h30m0s") {
		t.Errorf("job 2 = %s %q, want failed for want of an AMI", j.State, j.Reason)
	}
}

// TestCapUnderConcurrency (local world): six jobs are handled by six concurrent invocations under a
// total cap of two: exactly two instances launch, two slots are counted, the other four wait.
func TestCapUnderConcurrency(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.h.cfg.MaxRunners = 2
	ctx := context.Background()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for id := int64(1); id <= 6; id++ {
		m := r.msg(queue.ActionQueued, id)
		r.sim.AddJob(toSimJob(m))
		wg.Go(func() {
			<-start
			if _, err := r.h.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{record("m", m, 1)}}); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := len(r.instances()); n != 2 {
		t.Errorf("%d instances under a cap of 2", n)
	}
	if total := r.slots(); total != 2 {
		t.Errorf("%d slots counted, want 2", total)
	}
	waiting := 0
	for id := int64(1); id <= 6; id++ {
		if j := r.job(id); j.State == state.Queued && strings.Contains(j.Reason, "cap") {
			waiting++
		}
	}
	if waiting != 4 {
		t.Errorf("%d jobs waiting on the cap, want 4", waiting)
	}
}

// TestFirstBuildThenLaunch (local world): a fresh deployment: the preset is recorded building
// with no AMI (the first-build custom resource). A job queued then waits; when the build's AMI
// is recorded (as amiwatcher does on AVAILABLE), the job's next retry launches from it, well
// inside NO_AMI_WAIT.
func TestFirstBuildThenLaunch(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	if err := r.store.PutPresetImage(ctx, state.PresetImage{Name: "linux-x64", Status: state.ImageBuilding, UpdatedAt: r.now}); err != nil {
		t.Fatal(err)
	}
	r.send(r.msg(queue.ActionQueued, 1))
	r.drain(1)
	if j := r.job(1); j.State != state.Queued || !strings.Contains(j.Reason, "no AMI yet") {
		t.Fatalf("job 1 = %s %q, want waiting for the first AMI", j.State, j.Reason)
	}
	r.now = r.now.Add(40 * time.Minute) // the build and its tests
	if _, err := r.store.UpdatePresetImage(ctx, "linux-x64", func(cur state.PresetImage, _ bool) (state.PresetImage, error) {
		cur.Status, cur.AMIID, cur.AMIBuild, cur.Build = state.ImageReady, r.world.Images["x86_64"], "1.0.1/1", "1.0.1/1"
		return cur, nil
	}); err != nil {
		t.Fatal(err)
	}
	r.drain(3)
	if j := r.job(1); j.State != state.Launched || j.InstanceID == "" {
		t.Fatalf("job 1 = %s %q, want launched from the first AMI", j.State, j.Reason)
	}
	r.countsAgree()
}
