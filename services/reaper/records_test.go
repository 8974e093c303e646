package main

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/state"
)

// slotsNow is what the slot counters read.
type slotsNow struct {
	Total     int
	PerPreset map[string]int
}

func (r *rig) slots() slotsNow {
	r.t.Helper()
	total, per, err := r.store.Slots(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return slotsNow{total, per}
}

// jobSlots returns, by fixture, the state of each job and whether it holds a slot itself.
func (r *rig) jobSlots(jobs map[string]int64) map[string]string {
	r.t.Helper()
	out := map[string]string{}
	for name, id := range jobs {
		j, err := r.store.Job(context.Background(), r.host, id)
		if err != nil {
			r.t.Fatal(err)
		}
		out[name] = string(j.State) + ", slot " + strconv.FormatBool(j.SlotHeld)
	}
	return out
}

// TestRecords (local world, this rig's own state table; r.now moves: t0, then t0+2h, then
// t0+2h10m when records runs). Fixtures, and what must become of each:
//   - unregistered, gone (501): idle, never registered, instance terminated: done, slot back;
//     its job relaunched (attempt 1, a launch message).
//   - registered, gone (502): idle, registered, instance terminated: the runner is left to
//     registrations (still idle, registered, holding its slot); its job relaunched.
//   - taken (503) and took it (504): GitHub gave 503's runner job 504 (recorded: runner busy with
//     504, job 504 running): 503 relaunched; 504 and the runner untouched.
//   - done, slot kept (505): runner done but its slot never released (a crash), job launched:
//     slot back, job relaunched.
//   - done, job cancelled (506): likewise, but GitHub says the job completed: slot back, the job
//     left to its completed event.
//   - ran its own job (507): runner busy with its own job, the job's in_progress not recorded
//     yet: untouched.
//   - healthy (508): idle, instance running: untouched.
//   - abandoned (509): provisioning, holding a slot, lease ended 2h ago, no instance: slot back.
//   - abandoned, instance live (510): likewise but an instance launched for it still runs: kept.
//   - recent lease (511): provisioning, holding a slot, lease ended 9 min ago: kept.
//
// The counters drifted behind the store's back: CAP/total 42, CAP/preset#linux-x64 3 (the
// releases above take it to zero and beyond), CAP/preset#retired 2 (no holder at all). After the
// run they read what is held: 5 runners (502, 503's, 504's, 507, 508) and 2 jobs (510, 511).
// A dry run first changes nothing at all; a second real run finds nothing left to do; a give-back
// from a stale read of 511 (a redrive claimed it since) gives nothing back.
func TestRecords(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	db, table := r.ownTable()
	mine, _ := r.ownJITStack()
	ctx := context.Background()

	fx := map[string]fixture{}
	for name, id := range map[string]int64{"registered, gone": 502, "taken": 503, "took it": 504, "done, slot kept": 505,
		"done, job cancelled": 506, "ran its own job": 507, "healthy": 508} {
		fx[name] = fixture{r.launchedIn(id, mine), id}
	}
	fx["unregistered, gone"] = fixture{r.instance(r.tags(501, mine)), 501}
	r.launchedOn(501, fx["unregistered, gone"].iid, false)
	r.killInstance(fx["unregistered, gone"].iid)
	r.killInstance(fx["registered, gone"].iid)

	taken := fx["taken"].iid
	r.takeJob(taken, 504)
	if _, err := r.store.UpdateRunner(ctx, taken, []state.RunnerState{state.Idle}, state.Busy, state.RunnerChange{BusyJobID: 504}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Transition(ctx, r.host, 504, []state.JobState{state.Launched}, state.Running,
		state.Change{InstanceID: taken, RunnerName: "spotrunner-" + taken}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"done, slot kept", "done, job cancelled"} {
		if _, err := r.store.UpdateRunner(ctx, fx[name].iid, []state.RunnerState{state.Idle}, state.Done, state.RunnerChange{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.sim.CompleteJob(506, "cancelled"); err != nil {
		t.Fatal(err)
	}
	r.takeJob(fx["ran its own job"].iid, 507)
	if _, err := r.store.UpdateRunner(ctx, fx["ran its own job"].iid, []state.RunnerState{state.Idle}, state.Busy, state.RunnerChange{BusyJobID: 507}); err != nil {
		t.Fatal(err)
	}

	jobs := map[string]int64{"abandoned": 509, "abandoned, instance live": 510, "recent lease": 511}
	r.provisioning(509)
	r.provisioning(510)
	r.instance(r.tags(510, mine)) // launched, never recorded
	r.now = r.now.Add(2 * time.Hour)
	r.provisioning(511)
	r.now = r.now.Add(10 * time.Minute)

	setCounter(t, db, table, "total", 42)
	setCounter(t, db, table, "preset#linux-x64", 3)
	setCounter(t, db, table, "preset#retired", 2)

	beforeRunners, beforeJobs, beforeSlots := r.outcomes(fx), r.jobSlots(jobs), r.slots()
	r.rp.cfg.DryRun = true
	p, err := r.runOnly(r.rp.records)
	r.rp.cfg.DryRun = false
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(beforeRunners, r.outcomes(fx)); diff != "" {
		t.Errorf("the dry run changed runners or jobs (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(beforeJobs, r.jobSlots(jobs)); diff != "" {
		t.Errorf("the dry run changed provisioning jobs (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(beforeSlots, r.slots()); diff != "" {
		t.Errorf("the dry run changed the counters (-before +after):\n%s", diff)
	}
	wantWould := map[string]int{
		"records.would retire runner":               1,
		"records.would release slot of done runner": 2,
		"records.would relaunch job":                4,
		"records.would give back abandoned slot":    1,
		"records.would repair slot counter":         3,
	}
	gotWould := map[string]int{}
	for k, n := range p.counts {
		if k != "records.skipped" {
			gotWould[k] = n
		}
	}
	if diff := cmp.Diff(wantWould, gotWould); diff != "" {
		t.Errorf("the dry run's counts (-want +got):\n%s", diff)
	}

	if _, err := r.runOnly(r.rp.records); err != nil {
		t.Fatal(err)
	}
	idleLive := outcome{Live: true, Registered: true, Runner: state.Idle, Slot: true, Job: state.Launched}
	wantRunners := map[string]outcome{
		"unregistered, gone":  {Runner: state.Done, Job: state.Queued, Attempt: 1, Relaunched: 1},
		"registered, gone":    {Registered: true, Runner: state.Idle, Slot: true, Job: state.Queued, Attempt: 1, Relaunched: 1},
		"taken":               {Live: true, Registered: true, Runner: state.Busy, Slot: true, Job: state.Queued, Attempt: 1, Relaunched: 1},
		"took it":             {Live: true, Registered: true, Runner: state.Idle, Slot: true, Job: state.Running},
		"done, slot kept":     {Live: true, Registered: true, Runner: state.Done, Job: state.Queued, Attempt: 1, Relaunched: 1},
		"done, job cancelled": {Live: true, Registered: true, Runner: state.Done, Job: state.Launched},
		"ran its own job":     {Live: true, Registered: true, Runner: state.Busy, Slot: true, Job: state.Launched},
		"healthy":             idleLive,
	}
	if diff := cmp.Diff(wantRunners, r.outcomes(fx)); diff != "" {
		t.Errorf("runners and their jobs after records (-want +got):\n%s", diff)
	}
	wantJobs := map[string]string{"abandoned": "provisioning, slot false", "abandoned, instance live": "provisioning, slot true", "recent lease": "provisioning, slot true"}
	if diff := cmp.Diff(wantJobs, r.jobSlots(jobs)); diff != "" {
		t.Errorf("provisioning jobs after records (-want +got):\n%s", diff)
	}
	wantSlots := slotsNow{Total: 7, PerPreset: map[string]int{"linux-x64": 7, "retired": 0}}
	if diff := cmp.Diff(wantSlots, r.slots()); diff != "" {
		t.Errorf("slot counters after records (-want +got):\n%s", diff)
	}
	j, err := r.store.Job(ctx, r.host, 503)
	if err != nil {
		t.Fatal(err)
	}
	if want := "relaunched by the reaper: its runner " + taken + " is busy with job 504"; j.Reason != want {
		t.Errorf("job 503's reason %q, want %q", j.Reason, want)
	}

	p, err = r.runOnly(r.rp.records)
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range p.counts {
		if k != "records.skipped" {
			t.Errorf("a second run did %s %d times, want nothing left to do", k, n)
		}
	}
	if diff := cmp.Diff(wantSlots, r.slots()); diff != "" {
		t.Errorf("slot counters after a second run (-want +got):\n%s", diff)
	}

	// A redrive claims the recent-lease job (511) between the reaper's read and its give-back: the
	// slot stays with the new claim.
	stale, err := r.store.Job(ctx, r.host, 511)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Transition(ctx, r.host, 511, []state.JobState{state.Provisioning}, state.Provisioning, state.Change{Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := r.store.GiveBackStaleSlot(ctx, stale); !errors.Is(err, state.ErrConflict) {
		t.Errorf("GiveBackStaleSlot after a new claim: %v, want ErrConflict", err)
	}
	if diff := cmp.Diff(map[string]string{"recent lease": "provisioning, slot true"}, r.jobSlots(map[string]int64{"recent lease": 511})); diff != "" {
		t.Errorf("job 511 after a stale give-back (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantSlots, r.slots()); diff != "" {
		t.Errorf("slot counters after a stale give-back (-want +got):\n%s", diff)
	}
}

// launchDuringRepair is the state table with a launch slipped in just before the reaper's
// counter repair: the first write to a CAP item through it first runs launch.
type launchDuringRepair struct {
	*world.DynamoDB
	once   sync.Once
	launch func()
}

func (d *launchDuringRepair) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if pk, ok := in.Key["pk"].(*dbtypes.AttributeValueMemberS); ok && pk.Value == "CAP" {
		d.once.Do(d.launch)
	}
	return d.DynamoDB.UpdateItem(ctx, in, optFns...)
}

// TestRecordsCounterRace (local world, this rig's own state table): runner 601 holds a slot and
// job 602 is claimed, no slot yet; CAP/total drifted to 5. While records recounts (one slot
// held), job 602 takes a slot (CAP/total 6): the repair written from the count must not clobber
// that launch, so the counter stays 6 and the step says it skipped. The next run counts two held
// (the runner and the job) and repairs the counter to 2.
func TestRecordsCounterRace(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	db, table := r.ownTable()
	mine, _ := r.ownJITStack()
	ctx := context.Background()
	r.launchedIn(601, mine)
	labels := []string{"self-hosted", "spotrunner/linux-x64"}
	if _, _, err := r.store.CreateJob(ctx, state.Job{Host: r.host, ID: 602, Owner: "acme", OwnerType: "Organization", Repo: "app",
		InstallationID: orgInst, Labels: labels, LabelSet: labels, ReceivedAt: r.now}, state.Queued); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Claim(ctx, r.host, 602, time.Minute); err != nil {
		t.Fatal(err)
	}
	setCounter(t, db, table, "total", 5)

	launcher := r.store
	var launchErr error
	hooked := &launchDuringRepair{DynamoDB: db, launch: func() {
		launchErr = launcher.AcquireSlot(ctx, r.host, 602, "linux-x64", 0, 0, state.LaunchSpec{})
	}}
	r.rp.jobs = state.New(hooked, table).WithClock(func() time.Time { return r.now })
	p, err := r.runOnly(r.rp.records)
	if err != nil {
		t.Fatal(err)
	}
	if launchErr != nil {
		t.Fatal(launchErr)
	}
	if got := p.counts["records.repair slot counter"]; got != 0 {
		t.Errorf("records repaired %d counters during a launch, want 0", got)
	}
	if got := p.counts["records.skipped"]; got != 1 {
		t.Errorf("records skipped %d things, want 1: the repair that lost the race", got)
	}
	if diff := cmp.Diff(slotsNow{6, map[string]int{"linux-x64": 2}}, r.slots()); diff != "" {
		t.Errorf("slot counters after the race (-want +got):\n%s", diff)
	}

	if _, err := r.runOnly(r.rp.records); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(slotsNow{2, map[string]int{"linux-x64": 2}}, r.slots()); diff != "" {
		t.Errorf("slot counters after the next run (-want +got):\n%s", diff)
	}
	// A counter read as some value and changed since is never overwritten.
	if err := r.store.SetSlotCount(ctx, "", 5, 0); !errors.Is(err, state.ErrConflict) {
		t.Errorf("SetSlotCount from a stale value: %v, want ErrConflict", err)
	}
}
