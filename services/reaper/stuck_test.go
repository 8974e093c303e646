package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/ec2world"
	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// The helpers below serve the tests of stuckLaunches, overTime and orphans.

// ownStack gives this rig a deployment name of its own, so that no other test's reaper (every rig
// shares one moto) takes this rig's instances for its orphans, and returns it together with a
// second one for "another deployment".
func (r *rig) ownStack() (mine, other string) {
	mine, other = world.Name(r.t, "stack"), world.Name(r.t, "other")
	r.rp.cfg.Deployment = mine
	r.rp.params = SSMParams{api: r.ssm, deployment: mine}
	return mine, other
}

// launchedIn is launched(id) with the instance tagged deployment dep.
func (r *rig) launchedIn(id int64, dep string) string {
	r.t.Helper()
	_, iid := r.launched(id)
	r.retag(iid, map[string]string{fleet.DeploymentTag: dep})
	return iid
}

// retag sets tags on instance iid, as someone with EC2 access might.
func (r *rig) retag(iid string, tags map[string]string) {
	r.t.Helper()
	var ts []ec2types.Tag
	for k, v := range tags {
		ts = append(ts, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	if _, err := r.ec2raw.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{iid}, Tags: ts}); err != nil {
		r.t.Fatal(err)
	}
}

// killInstance terminates iid behind the reaper's back (the bootstrap shut it down).
func (r *rig) killInstance(iid string) {
	r.t.Helper()
	if _, err := r.ec2raw.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{iid}}); err != nil {
		r.t.Fatal(err)
	}
}

// takeJob makes the runner of instance iid take job id on GitHub (its runner connects first).
func (r *rig) takeJob(iid string, id int64) {
	r.t.Helper()
	if _, err := r.sim.ConnectRunner(r.jitConfigs[iid]); err != nil {
		r.t.Fatal(err)
	}
	if err := r.sim.AssignJob(id, "spotrunner-"+iid); err != nil {
		r.t.Fatal(err)
	}
}

// startedHere is takeJob plus what the provisioner records for the in_progress event: the runner
// busy with the job, the job running.
func (r *rig) startedHere(iid string, id int64) {
	r.t.Helper()
	r.takeJob(iid, id)
	ctx := context.Background()
	if _, err := r.store.UpdateRunner(ctx, iid, []state.RunnerState{state.Idle}, state.Busy, state.RunnerChange{BusyJobID: id}); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.store.Transition(ctx, r.host, id, []state.JobState{state.Launched}, state.Running, state.Change{RunnerName: "spotrunner-" + iid}); err != nil {
		r.t.Fatal(err)
	}
}

// finishedHere is what GitHub and the provisioner do when the job id that runner iid runs
// completes: GitHub deletes the JIT runner, the job is completed, the runner done, its slot
// released. The instance is left running (its shutdown failed).
func (r *rig) finishedHere(iid string, id int64) {
	r.t.Helper()
	ctx := context.Background()
	if err := r.sim.CompleteJob(id, "success"); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.store.Transition(ctx, r.host, id, []state.JobState{state.Running}, state.Completed, state.Change{}); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.store.UpdateRunner(ctx, iid, []state.RunnerState{state.Idle, state.Busy}, state.Done, state.RunnerChange{}); err != nil {
		r.t.Fatal(err)
	}
	if err := r.store.ReleaseSlot(ctx, iid); err != nil {
		r.t.Fatal(err)
	}
}

// runOnly runs one step of the reaper as Run would (its dry-run flag and margin), without the
// other steps, and returns the pass (its counts) and the step's error.
func (r *rig) runOnly(step func(context.Context, *pass) error) (*pass, error) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := &pass{margin: r.rp.cfg.Margin, dryRun: r.rp.cfg.DryRun, counts: map[string]int{}}
	if d, ok := ctx.Deadline(); ok {
		p.deadline = d
	}
	err := step(ctx, p)
	return p, err
}

// fixture is one instance of a test's world: the instance and the job it was launched for (0:
// none).
type fixture struct {
	iid string
	job int64
}

// outcome is what became of a fixture.
type outcome struct {
	Live       bool              // the instance is pending or running
	Registered bool              // its runner is registered on GitHub
	Runner     state.RunnerState // its runner item's state; "" when none is recorded
	Slot       bool              // its runner item holds a slot
	Job        state.JobState    // its job's state; "" for no job
	Attempt    int               // its job's launch attempt
	Relaunched int               // the attempt of a launch message queued for its job; 0 for none
}

// outcomes reads what became of each fixture. It drains the job queue.
func (r *rig) outcomes(fx map[string]fixture) map[string]outcome {
	r.t.Helper()
	ctx := context.Background()
	registered := map[string]bool{}
	for _, gr := range r.sim.Runners() {
		registered[gr.Name] = true
	}
	relaunched := r.relaunches()
	out := map[string]outcome{}
	for name, f := range fx {
		var o outcome
		inst, found, err := r.fleet.Lookup(ctx, f.iid)
		if err != nil {
			r.t.Fatal(err)
		}
		o.Live = found && (inst.State == "pending" || inst.State == "running")
		o.Registered = registered["spotrunner-"+f.iid]
		switch run, err := r.store.Runner(ctx, f.iid); {
		case errors.Is(err, state.ErrNotFound):
		case err != nil:
			r.t.Fatal(err)
		default:
			o.Runner, o.Slot = run.State, run.HoldsSlot
		}
		if f.job != 0 {
			j, err := r.store.Job(ctx, r.host, f.job)
			if err != nil {
				r.t.Fatal(err)
			}
			o.Job, o.Attempt, o.Relaunched = j.State, j.Attempt, relaunched[f.job]
		}
		out[name] = o
	}
	return out
}

// relaunches drains the job queue and returns the attempt of each launch message, by job.
func (r *rig) relaunches() map[int64]int {
	r.t.Helper()
	ctx := context.Background()
	got := map[int64]int{}
	for {
		out, err := r.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(r.queue), MaxNumberOfMessages: 10})
		if err != nil {
			r.t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return got
		}
		for _, m := range out.Messages {
			msg, err := queue.Decode([]byte(aws.ToString(m.Body)))
			if err != nil {
				r.t.Fatal(err)
			}
			if msg.Action != queue.ActionQueued {
				r.t.Errorf("job %d: a %s message on the queue, want queued", msg.JobID, msg.Action)
			}
			got[msg.JobID] = msg.Attempt
			if _, err := r.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(r.queue), ReceiptHandle: m.ReceiptHandle}); err != nil {
				r.t.Fatal(err)
			}
		}
	}
}

// Outcomes of a runner launched for its job and left alone, and of one retired (done, instance
// terminated, registration deleted, slot freed) whose job is left launched.
var (
	untouched = outcome{Live: true, Registered: true, Runner: state.Idle, Slot: true, Job: state.Launched}
	retired   = outcome{Runner: state.Done, Job: state.Launched}
)

// TestStuck (local world; this rig's deployment and another one): at t0 the provisioner launched
// and registered runners for jobs 101-106; eleven minutes later (past STUCK_AFTER) one more for
// 107. Then stuckLaunches runs once.
//   - stuck (101): idle, its job still queued on GitHub: deregistered, terminated, done, slot freed;
//     the job goes back to queued as attempt 1 with a launch message.
//   - busy on GitHub (102): took its job on GitHub, the in_progress event not processed yet (the
//     item is still idle): untouched.
//   - job cancelled (103): its job completed (cancelled) on GitHub: retired, the job left launched
//     for its completed event, no launch.
//   - instance gone (104): the instance shut itself down: deregistered, done, slot freed, job
//     relaunched.
//   - other deployment (105): the instance is tagged with another deployment: untouched.
//   - busy (106): running its job, recorded busy: untouched.
//   - young (107): launched under STUCK_AFTER ago: untouched.
func TestStuck(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	mine, other := r.ownStack()
	fx := map[string]fixture{}
	for name, id := range map[string]int64{"stuck": 101, "busy on GitHub": 102, "job cancelled": 103, "instance gone": 104, "busy": 106} {
		fx[name] = fixture{r.launchedIn(id, mine), id}
	}
	fx["other deployment"] = fixture{r.launchedIn(105, other), 105}
	r.takeJob(fx["busy on GitHub"].iid, 102)
	if err := r.sim.CompleteJob(103, "cancelled"); err != nil {
		t.Fatal(err)
	}
	r.killInstance(fx["instance gone"].iid)
	r.startedHere(fx["busy"].iid, 106)
	r.now = r.now.Add(11 * time.Minute)
	fx["young"] = fixture{r.launchedIn(107, mine), 107}

	if _, err := r.runOnly(r.rp.stuckLaunches); err != nil {
		t.Fatal(err)
	}
	want := map[string]outcome{
		"stuck":            {Runner: state.Done, Job: state.Queued, Attempt: 1, Relaunched: 1},
		"busy on GitHub":   untouched,
		"job cancelled":    retired,
		"instance gone":    {Runner: state.Done, Job: state.Queued, Attempt: 1, Relaunched: 1},
		"other deployment": untouched,
		"busy":             {Live: true, Registered: true, Runner: state.Busy, Slot: true, Job: state.Running},
		"young":            untouched,
	}
	if diff := cmp.Diff(want, r.outcomes(fx)); diff != "" {
		t.Errorf("after stuckLaunches (-want +got):\n%s", diff)
	}
}

// TestStuckGitHubFaults (local world, GitHub failing): one stuck runner (job 111, still queued on
// GitHub) per case, and stuckLaunches runs once while GitHub fails one kind of call.
//   - runners unlisted: GitHub cannot say whether the runner is busy: untouched.
//   - runner not deleted: the registration cannot be deleted: untouched, and the step fails.
//   - runner busy at delete: GitHub refuses the delete (422, the runner took a job a moment
//     ago): untouched.
//   - job status unknown: the runner is retired, but without GitHub's word that the job is
//     still queued it is not relaunched.
func TestStuckGitHubFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pattern string
		status  int
		want    outcome
		wantErr bool
	}{
		{"runners unlisted", "GET /orgs/*/actions/runners", 503, untouched, false},
		{"runner not deleted", "DELETE /orgs/*/actions/runners/*", 503, untouched, true},
		{"runner busy at delete", "DELETE /orgs/*/actions/runners/*", 422, untouched, false},
		{"job status unknown", "GET /repos/*/*/actions/jobs/*", 503, retired, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			mine, _ := r.ownStack()
			fx := map[string]fixture{"stuck": {r.launchedIn(111, mine), 111}}
			r.now = r.now.Add(11 * time.Minute)
			r.sim.Fail(tt.pattern, 10, tt.status)
			_, err := r.runOnly(r.rp.stuckLaunches)
			if (err != nil) != tt.wantErr {
				t.Errorf("stuckLaunches err = %v, want an error: %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(map[string]outcome{"stuck": tt.want}, r.outcomes(fx)); diff != "" {
				t.Errorf("after stuckLaunches (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStuckEC2Faults (local world, EC2 failing once): two stuck runners (jobs 121, 122).
//   - lookup fails: the first DescribeInstances fails; that runner is left for the next run, the
//     other is retired, and the step reports the error; the next run retires the first.
//   - terminate fails: both TerminateInstances calls fail; both runners are deregistered and done
//     but keep their slots and instances, and the step reports both errors; the orphans step then
//     terminates both instances (their records are done).
func TestStuckEC2Faults(t *testing.T) {
	t.Parallel()
	t.Run("lookup fails", func(t *testing.T) {
		t.Parallel()
		r := newRig(t)
		mine, _ := r.ownStack()
		fx := map[string]fixture{"a": {r.launchedIn(121, mine), 121}, "b": {r.launchedIn(122, mine), 122}}
		r.now = r.now.Add(11 * time.Minute)
		r.ec2.FailCall(ec2world.DescribeInstances, 1, ec2world.APIError("InternalError", "An internal error has occurred"))
		if _, err := r.runOnly(r.rp.stuckLaunches); err == nil {
			t.Error("stuckLaunches reported no error")
		}
		relaunched := outcome{Runner: state.Done, Job: state.Queued, Attempt: 1, Relaunched: 1}
		n := map[outcome]int{}
		for _, o := range r.outcomes(fx) {
			n[o]++
		}
		if diff := cmp.Diff(map[outcome]int{untouched: 1, relaunched: 1}, n); diff != "" {
			t.Errorf("after the first run, outcomes by count (-want +got):\n%s", diff)
		}
		if _, err := r.runOnly(r.rp.stuckLaunches); err != nil {
			t.Fatal(err)
		}
		for name, o := range r.outcomes(fx) {
			o.Relaunched = 1 // the first run's message was drained above
			if diff := cmp.Diff(relaunched, o); diff != "" {
				t.Errorf("%s after the second run (-want +got):\n%s", name, diff)
			}
		}
	})
	t.Run("terminate fails", func(t *testing.T) {
		t.Parallel()
		r := newRig(t)
		mine, _ := r.ownStack()
		fx := map[string]fixture{"a": {r.launchedIn(121, mine), 121}, "b": {r.launchedIn(122, mine), 122}}
		r.now = r.now.Add(11 * time.Minute)
		r.ec2.FailCall(ec2world.TerminateInstances, 2, ec2world.APIError("InternalError", "An internal error has occurred"))
		_, err := r.runOnly(r.rp.stuckLaunches)
		if err == nil {
			t.Error("stuckLaunches reported no error")
		}
		// Retired (done, slot given back in one write) before the terminate, which failed.
		doneAlive := outcome{Live: true, Runner: state.Done, Slot: false, Job: state.Queued, Attempt: 1, Relaunched: 1}
		if diff := cmp.Diff(map[string]outcome{"a": doneAlive, "b": doneAlive}, r.outcomes(fx)); diff != "" {
			t.Errorf("after stuckLaunches (-want +got):\n%s", diff)
		}
		if _, err := r.runOnly(r.rp.orphans); err != nil {
			t.Fatal(err)
		}
		doneAlive.Live, doneAlive.Relaunched = false, 0
		if diff := cmp.Diff(map[string]outcome{"a": doneAlive, "b": doneAlive}, r.outcomes(fx)); diff != "" {
			t.Errorf("after orphans (-want +got):\n%s", diff)
		}
	})
}

// TestStuckDryRun (local world, DRY_RUN): a stuck runner (job 131, queued on GitHub) and one whose
// job was cancelled (132). stuckLaunches changes nothing and counts what it would have done:
// two deregistrations, retirements (done with the slot given back) and terminations, one relaunch,
// one job left to its events.
func TestStuckDryRun(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	mine, _ := r.ownStack()
	fx := map[string]fixture{"stuck": {r.launchedIn(131, mine), 131}, "job cancelled": {r.launchedIn(132, mine), 132}}
	if err := r.sim.CompleteJob(132, "cancelled"); err != nil {
		t.Fatal(err)
	}
	r.now = r.now.Add(11 * time.Minute)
	r.rp.cfg.DryRun = true
	p, err := r.runOnly(r.rp.stuckLaunches)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]outcome{"stuck": untouched, "job cancelled": untouched}, r.outcomes(fx)); diff != "" {
		t.Errorf("dry run changed (-want +got):\n%s", diff)
	}
	want := map[string]int{
		"stuckLaunches.would deregister runner": 2, "stuckLaunches.would retire runner": 2,
		"stuckLaunches.would terminate instance": 2,
		"stuckLaunches.would relaunch job":       1, "stuckLaunches.skipped": 1,
	}
	if diff := cmp.Diff(want, p.counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}

// TestStuckOverTimeOrphansAtDeadline (local world): a stuck runner past its deadline (job 141) and
// an untracked instance, all old enough; each step starts with less than MARGIN left before the
// deadline: none changes anything, and each says it was cut off.
func TestStuckOverTimeOrphansAtDeadline(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	mine, _ := r.ownStack()
	fx := map[string]fixture{"stuck": {r.launchedIn(141, mine), 141}, "untracked": {r.instance(r.tags(142, mine)), 0}}
	r.now = r.now.Add(2 * time.Hour)
	for name, step := range map[string]func(context.Context, *pass) error{
		"stuckLaunches": r.rp.stuckLaunches, "overTime": r.rp.overTime, "orphans": r.rp.orphans,
	} {
		p := &pass{margin: r.rp.cfg.Margin, counts: map[string]int{}, deadline: time.Now().Add(r.rp.cfg.Margin / 2)}
		if err := step(context.Background(), p); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if diff := cmp.Diff([]string{name}, p.cutOff); diff != "" {
			t.Errorf("%s: cut off (-want +got):\n%s", name, diff)
		}
	}
	want := map[string]outcome{"stuck": untouched, "untracked": {Live: true}}
	if diff := cmp.Diff(want, r.outcomes(fx)); diff != "" {
		t.Errorf("after the steps (-want +got):\n%s", diff)
	}
}
