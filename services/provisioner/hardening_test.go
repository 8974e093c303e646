package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/ec2world"
	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// The paths where a job was lost, a resource leaked or AWS/GitHub broke what moto passed (the
// hardening issue); each test failed before its fix.

// TestFewerLabelsTakeRunner (local world): job 1 asks for [self-hosted, spotrunner/linux-x64,
// linux], job 2 for [self-hosted, spotrunner/linux-x64]; each gets a runner with its exact labels.
// GitHub gives job 2 the runner of job 1 (its labels include all of job 2's). Job 1 cannot take
// job 2's runner (it lacks `linux`): job 1 is relaunched on a new instance, job 2's own runner is
// deregistered and terminated, and job 2's record names the instance it ran on.
func TestFewerLabelsTakeRunner(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	more := []string{"self-hosted", "spotrunner/linux-x64", "linux"}
	r.send(r.msg(queue.ActionQueued, 1, more...))
	r.send(r.msg(queue.ActionQueued, 2))
	r.drain(4)
	inst := map[int64]string{1: r.job(1).InstanceID, 2: r.job(2).InstanceID}
	for id, iid := range inst {
		if iid == "" {
			t.Fatalf("job %d has no instance", id)
		}
		r.boot(iid)
	}
	r.assign(2, inst[1])
	r.drain(4) // in_progress of 2, then the relaunch of 1

	j1, j2 := r.job(1), r.job(2)
	if j1.State != state.Launched || j1.Attempt != 1 || j1.InstanceID == inst[1] || j1.InstanceID == inst[2] {
		t.Fatalf("job 1 = %s attempt %d on %q, want relaunched on a new instance", j1.State, j1.Attempt, j1.InstanceID)
	}
	if j2.State != state.Running || j2.InstanceID != inst[1] || j2.RunnerName != queue.RunnerName(inst[1]) {
		t.Errorf("job 2 = %s on %q (%s), want running on job 1's first instance %s", j2.State, j2.InstanceID, j2.RunnerName, inst[1])
	}
	live := map[string]bool{}
	for _, i := range r.instances() {
		live[i.ID] = true
	}
	if diff := cmp.Diff(map[string]bool{inst[1]: true, j1.InstanceID: true}, live); diff != "" {
		t.Errorf("live instances (-want +got):\n%s", diff)
	}
	r.boot(j1.InstanceID)
	r.assign(1, j1.InstanceID)
	r.complete(2, inst[1], "success")
	r.complete(1, j1.InstanceID, "success")
	r.drain(3)
	r.settled([]int64{1, 2}, []string{inst[1], inst[2], j1.InstanceID})
	if n := r.slots(); n != 0 {
		t.Errorf("%d slots counted at the end, want 0", n)
	}
}

// TestForeignJobTakesRunner (local world): job 1 gets a runner; job 9, which is not ours
// (runs-on: self-hosted), is given that runner by GitHub. Ingest forwards job 9's in_progress and
// completed because they name our runner. Job 1 is relaunched on a new instance; when job 9
// completes, the taken runner is done and its slot free.
func TestForeignJobTakesRunner(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	inst := r.launched(1)
	foreign := r.msg(queue.ActionInProgress, 9, "self-hosted")
	foreign.RunnerName = queue.RunnerName(inst[1])
	r.sim.AddJob(toSimJob(foreign))
	if err := r.sim.AssignJob(9, foreign.RunnerName); err != nil {
		t.Fatal(err)
	}
	r.send(foreign)
	r.drain(4)
	j1 := r.job(1)
	if j1.State != state.Launched || j1.Attempt != 1 || j1.InstanceID == "" || j1.InstanceID == inst[1] {
		t.Fatalf("job 1 = %s attempt %d on %q, want relaunched on a new instance", j1.State, j1.Attempt, j1.InstanceID)
	}
	if err := r.sim.CompleteJob(9, "success"); err != nil {
		t.Fatal(err)
	}
	done := foreign
	done.Action, done.DeliveryID, done.Conclusion = queue.ActionCompleted, "d-9-completed", "success"
	r.send(done)
	r.boot(j1.InstanceID)
	r.assign(1, j1.InstanceID)
	r.complete(1, j1.InstanceID, "success")
	r.drain(4)
	r.settled([]int64{1, 9}, []string{inst[1], j1.InstanceID})
	if j9 := r.job(9); j9.InstanceID != inst[1] {
		t.Errorf("job 9 record names instance %q, want %s", j9.InstanceID, inst[1])
	}
	if n := r.slots(); n != 0 {
		t.Errorf("%d slots counted at the end, want 0", n)
	}
}

// TestLostInProgress (local world): jobs 1 and 2 get runners; GitHub gives job 2 to job 1's
// runner, and that in_progress delivery is lost (GitHub never retries it). When job 2's completed
// arrives, the count runs then: job 2's own runner, idle, is rebound to job 1 (no launch, no
// termination), and job 2's record names the runner it ran on.
func TestLostInProgress(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	inst := r.launched(1, 2)
	if err := r.sim.AssignJob(2, queue.RunnerName(inst[1])); err != nil {
		t.Fatal(err)
	}
	r.complete(2, inst[1], "success")
	r.drain(3)
	if j := r.job(1); j.State != state.Launched || j.InstanceID != inst[2] {
		t.Fatalf("job 1 = %s on %q, want launched on job 2's idle runner %s", j.State, j.InstanceID, inst[2])
	}
	if j := r.job(2); j.State != state.Completed || j.InstanceID != inst[1] || j.RunnerName != queue.RunnerName(inst[1]) {
		t.Errorf("job 2 = %s on %q (%s), want completed on %s", j.State, j.InstanceID, j.RunnerName, inst[1])
	}
	r.assign(1, inst[2])
	r.complete(1, inst[2], "success")
	r.drain(3)
	if got := r.ec2.Calls(); len(got) != 2 {
		t.Errorf("EC2 calls %v, want the two launches only", got)
	}
	r.settled([]int64{1, 2}, []string{inst[1], inst[2]})
	if n := r.slots(); n != 0 {
		t.Errorf("%d slots counted at the end, want 0", n)
	}
}

// TestResumeOnDeadInstance (local world): job 1's registration fails (GitHub 500) after its
// instance launched, and before the retry the instance is gone (a spot interruption) or its
// bootstrap has stopped waiting (9 minutes with no runner registered). The retry does not
// register a runner for it: the instance is discarded (terminated, slot back) and a new try
// launches a live one, which gets the runner and the config.
func TestResumeOnDeadInstance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		before func(r *rig, instanceID string)
	}{
		{"spot interruption", func(r *rig, iid string) {
			if _, err := r.ec2raw.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{iid}}); err != nil {
				r.t.Fatal(err)
			}
		}},
		{"config too late for the bootstrap", func(r *rig, iid string) { r.now = r.now.Add(9 * time.Minute) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.sim.Fail(jitRoute, 1, 500)
			r.send(r.msg(queue.ActionQueued, 1))
			if n := r.pump(); n != 1 {
				t.Fatalf("%d failed, want the registration to fail", n)
			}
			first := r.job(1).InstanceID
			if first == "" {
				t.Fatal("no instance recorded before the retry")
			}
			tc.before(r, first)
			r.drain(3)
			j := r.job(1)
			if j.State != state.Launched || j.InstanceID == "" || j.InstanceID == first {
				t.Fatalf("job 1 = %s on %q, want launched on a new instance (first %s)", j.State, j.InstanceID, first)
			}
			live := r.instances()
			if len(live) != 1 || live[0].ID != j.InstanceID {
				t.Errorf("live instances %+v, want only %s", live, j.InstanceID)
			}
			if delivered, _ := r.jitDelivered(first); delivered {
				t.Errorf("config delivered to the discarded instance %s", first)
			}
			runners := r.sim.Runners()
			if len(runners) != 1 || runners[0].Name != queue.RunnerName(j.InstanceID) {
				t.Errorf("runners %+v, want the new instance's only", runners)
			}
			if n := r.slots(); n != 1 {
				t.Errorf("%d slots counted, want 1 (the live runner's)", n)
			}
		})
	}
}

// TestTokenReusedAfterPresetChange (local world): the first CreateFleet launches but its answer is
// lost (hideFind: the instance is not visible to DescribeInstances yet); before the retry the
// preset changes (a bigger disk). The retry sends the try's fixed launch inputs with the same
// ClientToken, so EC2 returns the same instance instead of IdempotentParameterMismatch.
func TestTokenReusedAfterPresetChange(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.h.fleet = &crashAfterLaunch{Launcher: r.h.fleet, hideFind: true}
	r.send(r.msg(queue.ActionQueued, 1))
	if n := r.pump(); n != 1 {
		t.Fatalf("%d failed, want the lost answer to fail the first round", n)
	}
	p := r.presets["linux-x64"]
	p.DiskSizeGB = 200
	r.presets["linux-x64"] = p
	r.drain(3)
	j := r.job(1)
	live := r.instances()
	if j.State != state.Launched || len(live) != 1 || live[0].ID != j.InstanceID {
		t.Fatalf("job 1 = %s on %q (%s), live %+v; want launched on the one instance", j.State, j.InstanceID, j.Reason, live)
	}
	if n := strings.Count(strings.Join(r.ec2.Calls(), " "), ec2world.CreateFleet); n != 2 {
		t.Errorf("%d CreateFleet calls, want 2 (the lost one and its replay)", n)
	}
}

// startDuring plays the job's in_progress being handled while its launch is under way (a waiting
// job's retry launching while GitHub already gave the job to another runner).
type startDuring struct {
	Launcher
	r    *rig
	once sync.Once
}

func (s *startDuring) Launch(ctx context.Context, req fleet.Request) (fleet.Instance, error) {
	s.once.Do(func() {
		m := s.r.msg(queue.ActionInProgress, 1)
		m.RunnerName = "someone-elses-runner"
		if _, err := s.r.h.started(ctx, m); err != nil {
			s.r.t.Error(err)
		}
	})
	return s.Launcher.Launch(ctx, req)
}

// TestLaunchForStartedJob (local world): job 1 starts on another runner while its launch is under
// way. The instance launched for it is terminated at once, nothing is registered, and its slot is
// back before the message is acknowledged.
func TestLaunchForStartedJob(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.h.fleet = &startDuring{Launcher: r.h.fleet, r: r}
	r.send(r.msg(queue.ActionQueued, 1))
	if rounds := r.drain(2); rounds[0] != 0 {
		t.Errorf("rounds %v, want the event acknowledged", rounds)
	}
	if j := r.job(1); j.State != state.Running || j.InstanceID != "" {
		t.Errorf("job 1 = %s on %q, want running on the foreign runner", j.State, j.InstanceID)
	}
	if live := r.instances(); len(live) != 0 {
		t.Errorf("live instances %+v, want the launched one terminated", live)
	}
	if runners := r.sim.Runners(); len(runners) != 0 {
		t.Errorf("runners %+v, want none registered", runners)
	}
	if n := r.slots(); n != 0 {
		t.Errorf("%d slots counted, want 0", n)
	}
}

// busyBeforeDelete plays a runner taking a job between the provisioner's look-up and its delete:
// the registration's answer was lost (its config kept here), the instance connects with it and
// GitHub gives it job 1, then DeleteRunner reaches GitHub, which refuses a busy runner (422).
type busyBeforeDelete struct {
	Registrar
	r      *rig
	mu     sync.Mutex
	config string
}

func (b *busyBeforeDelete) GenerateJITConfig(ctx context.Context, t githubapp.Target, name string, lbls []string, group int64) (githubapp.JITConfig, error) {
	cfg, err := b.Registrar.GenerateJITConfig(ctx, t, name, lbls, group)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil && b.config == "" {
		b.config = cfg.Encoded
		return githubapp.JITConfig{}, githubapp.ErrUnavailable
	}
	return cfg, err
}

func (b *busyBeforeDelete) DeleteRunner(ctx context.Context, t githubapp.Target, id int64) error {
	b.mu.Lock()
	cfg := b.config
	b.mu.Unlock()
	rn, err := b.r.sim.ConnectRunner(cfg)
	if err != nil {
		b.r.t.Fatal(err)
	}
	if err := b.r.sim.AssignJob(1, rn.Name); err != nil {
		b.r.t.Fatal(err)
	}
	return b.Registrar.DeleteRunner(ctx, t, id)
}

// TestDeleteRefusedBusy (local world): a retried registration meets a 409, looks the runner up
// (offline), and its delete is refused because the runner just took the job (422). The instance
// runs the job: it is never terminated, and the runner id is recorded.
func TestDeleteRefusedBusy(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.h.github = &busyBeforeDelete{Registrar: r.h.github, r: r}
	r.send(r.msg(queue.ActionQueued, 1))
	r.drain(3)
	j := r.job(1)
	live := r.instances()
	if len(live) != 1 || live[0].ID != j.InstanceID {
		t.Fatalf("live instances %+v, want job 1's %s still running", live, j.InstanceID)
	}
	if j.State != state.Launched {
		t.Errorf("job 1 is %s (%s), want launched", j.State, j.Reason)
	}
	if ri, err := r.store.Runner(context.Background(), j.InstanceID); err != nil || ri.RunnerID == 0 || ri.State == state.Done {
		t.Errorf("runner item %+v (%v), want its runner id recorded and not done", ri, err)
	}
}

// TestRefusalsBoundedPerTarget: GitHub refusing registrations for one repository of a user
// installation spares launches for that target only, for at most refusalMemory, and an accepted
// registration there forgets it at once.
func TestRefusalsBoundedPerTarget(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	h := &Handler{now: func() time.Time { return now }}
	a := githubapp.Target{InstallationID: 12, Owner: "octocat", Repo: "tools"}
	b := githubapp.Target{InstallationID: 12, Owner: "octocat", Repo: "site"}
	h.refused(a, githubapp.ErrForbidden)
	tests := []struct {
		name    string
		after   time.Duration
		target  githubapp.Target
		accept  bool
		refused bool
	}{
		{"same target at once", 0, a, false, true},
		{"other repository of the installation", 0, b, false, false},
		{"same target within the memory", 50 * time.Second, a, false, true},
		{"same target after the memory", refusalMemory + time.Second, a, false, false},
	}
	for _, tt := range tests {
		h.refused(a, githubapp.ErrForbidden)
		now = now.Add(tt.after)
		err := h.refusedRecently(tt.target)
		if got := err != nil; got != tt.refused {
			t.Errorf("%s: refused = %v (%v), want %v", tt.name, got, err, tt.refused)
		}
		if err != nil && !strings.Contains(err.Error(), "ago") {
			t.Errorf("%s: %v does not say when", tt.name, err)
		}
	}
	h.refused(a, githubapp.ErrForbidden)
	h.accepted(a)
	if err := h.refusedRecently(a); err != nil {
		t.Errorf("after an accepted registration: %v", err)
	}
}

// TestBatchDeadline (local world): a batch whose function has less time left than one record may
// take starts none of them: each is reported failed, made visible again at once, and no job was
// touched; with time enough the same batch is processed.
func TestBatchDeadline(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.h.cfg.RecordBudget = 20 * time.Second
	ev := events.SQSEvent{}
	for id := int64(1); id <= 3; id++ {
		m := r.msg(queue.ActionQueued, id)
		r.sim.AddJob(toSimJob(m))
		ev.Records = append(ev.Records, record("m"+itoa(id), m, 1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := r.h.Handle(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	if diff := cmp.Diff([]string{"m1", "m2", "m3"}, failed); diff != "" {
		t.Errorf("failed records (-want +got):\n%s", diff)
	}
	for id := int64(1); id <= 3; id++ {
		if _, err := r.store.Job(context.Background(), r.host, id); err == nil {
			t.Errorf("job %d was touched with no time left", id)
		}
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	if resp, err := r.h.Handle(ctx2, ev); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Errorf("with a minute left: %+v, %v; want every record processed", resp.BatchItemFailures, err)
	}
}

// TestJITConfigTier (local world, SSM refusing what AWS refuses): the simulator's JIT configs are
// the size of GitHub's (over 4 KB: they carry the runner's RSA key), so the config is stored in the
// Advanced tier; a small one stays Standard, and one over 8 KB is refused before SSM is asked.
func TestJITConfigTier(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.send(r.msg(queue.ActionQueued, 1))
	r.drain(3)
	name := r.h.jit.name(r.job(1).InstanceID)
	got, err := r.ssm.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		t.Fatalf("config not delivered: %v", err)
	}
	if n := len(aws.ToString(got.Parameter.Value)); n <= 4096 {
		t.Errorf("JIT config of %d bytes, want a real one's size (over 4096)", n)
	}
	desc, err := r.ssm.DescribeParameters(context.Background(), &ssm.DescribeParametersInput{
		ParameterFilters: []ssmtypes.ParameterStringFilter{{Key: aws.String("Name"), Values: []string{name}}},
	})
	if err != nil || len(desc.Parameters) != 1 || desc.Parameters[0].Tier != ssmtypes.ParameterTierAdvanced {
		t.Errorf("parameter %s: %+v, %v; want one, in the Advanced tier", name, desc, err)
	}
	tests := []struct {
		name    string
		size    int
		want    string
		wantErr bool
	}{
		{"small", 100, "Standard", false},
		{"standard limit", 4096, "Standard", false},
		{"real JIT config", 5200, "Advanced", false},
		{"advanced limit", 8192, "Advanced", false},
		{"too big", 8193, "", true},
	}
	for _, tt := range tests {
		tier, err := tierFor(strings.Repeat("x", tt.size))
		if string(tier) != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: tier %q, err %v; want %q, error %v", tt.name, tier, err, tt.want, tt.wantErr)
		}
	}
}

// TestBurstUnderConflicts (local world, transaction conflicts injected on a tenth of DynamoDB's
// writes): a burst of 30 jobs, with no cap and under a total cap of 4, is launched, run and
// completed through the queue. Every job completes on one instance, and every slot counter is
// back to zero: a conflict is retried, never read as a full cap or as a slot already released.
func TestBurstUnderConflicts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cap  int
	}{{"no cap", 0}, {"total cap 4", 4}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.h.cfg.MaxRunners = tc.cap
			r.db.InjectConflicts(0.1)
			const n = 30
			done := map[int64]bool{}
			var runners []string
			for id := int64(1); id <= n; id++ {
				r.send(r.msg(queue.ActionQueued, id))
			}
			for round := 0; len(done) < n && round < 40; round++ {
				r.drain(6)
				for id := int64(1); id <= n; id++ {
					if j := r.job(id); !done[id] && j.State == state.Launched {
						r.boot(j.InstanceID)
						r.assign(id, j.InstanceID)
						r.complete(id, j.InstanceID, "success")
						done[id] = true
						runners = append(runners, j.InstanceID)
					}
				}
			}
			r.drain(6)
			r.db.InjectConflicts(0)
			if len(done) != n {
				t.Fatalf("%d of %d jobs ran", len(done), n)
			}
			ids := make([]int64, 0, n)
			for id := range done {
				ids = append(ids, id)
			}
			r.settled(ids, runners)
			total, per, err := r.store.Slots(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if total != 0 || per["linux-x64"] != 0 {
				t.Errorf("counters after the burst: total %d, linux-x64 %d; want 0 (%d conflicts injected)", total, per["linux-x64"], r.db.Conflicts())
			}
			if got := len(r.ec2.Calls()); got < n {
				t.Errorf("%d EC2 calls for %d jobs", got, n)
			}
			t.Logf("%d conflicts injected", r.db.Conflicts())
		})
	}
}
