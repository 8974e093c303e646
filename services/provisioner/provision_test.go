package main

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// TestHappyPath (local world): one queued job ends with one tagged instance, one JIT runner with
// exactly the job's labels, its config in SSM tagged with the instance's ARN, the runner item idle
// with the runner id, and the job launched. The API calls it took are counted and pinned.
func TestHappyPath(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.send(r.msg(queue.ActionQueued, 1, "self-hosted", "SpotRunner/linux-x64"))
	callsBefore := r.aws.snapshot() // the rig's own set-up calls
	ghBefore := len(r.sim.Calls())
	if fails := r.drain(3); fails[0] != 0 {
		t.Fatalf("failures per round: %v", fails)
	}
	callsAfter := r.aws.snapshot() // before the checks below make calls of their own
	ghCalls := r.sim.Calls()[ghBefore:]

	job := r.job(1)
	if job.State != state.Launched || job.InstanceID == "" || job.RunnerName != "spotrunner-"+job.InstanceID {
		t.Fatalf("job = %+v", job)
	}
	insts := r.instances()
	if len(insts) != 1 || insts[0].ID != job.InstanceID {
		t.Fatalf("instances = %+v, want exactly the job's", insts)
	}
	wantTags := map[string]string{
		"spotrunner:managed": "true", "spotrunner:deployment": "test-stack", "spotrunner:preset": "linux-x64", "spotrunner:host": r.host,
		"spotrunner:job": r.host + "/1", "spotrunner:attempt": "0", "spotrunner:timeout-minutes": "60",
		"spotrunner:idle-minutes": "10", "Name": "spotrunner-linux-x64",
	}
	if diff := cmp.Diff(wantTags, insts[0].Tags); diff != "" {
		t.Errorf("instance tags (-want +got):\n%s", diff)
	}
	runners := r.sim.Runners()
	if len(runners) != 1 || runners[0].Name != job.RunnerName {
		t.Fatalf("runners = %+v", runners)
	}
	if diff := cmp.Diff([]string{"self-hosted", "spotrunner/linux-x64"}, runners[0].Labels); diff != "" {
		t.Errorf("runner labels (-want +got):\n%s", diff)
	}
	delivered, arn := r.jitDelivered(job.InstanceID)
	if !delivered || arn != "arn:aws:ec2:us-east-1:123456789012:instance/"+job.InstanceID {
		t.Errorf("jit config delivered=%v arn=%q", delivered, arn)
	}
	ri, err := r.store.Runner(context.Background(), job.InstanceID)
	if err != nil || ri.State != state.Idle || ri.RunnerID != runners[0].ID || ri.JobID != 1 {
		t.Errorf("runner item = %+v, %v", ri, err)
	}

	// Calls per provisioned job (the figure of the closing note).
	calls := callsAfter
	for k, v := range callsBefore {
		calls[k] -= v
	}
	var gh []string
	for _, c := range ghCalls {
		gh = append(gh, c.Method+" "+pathShape(c.Path))
	}
	t.Logf("AWS calls: %v", calls)
	t.Logf("EC2 calls: %v", r.ec2.Calls())
	t.Logf("GitHub calls: %v", gh)
	wantAWS := map[string]int{
		"DynamoDB.PutItem": 1, "DynamoDB.UpdateItem": 3, "DynamoDB.GetItem": 1, "DynamoDB.TransactWriteItems": 2,
		"SSM.PutParameter": 1, "EC2.CreateFleet": 1,
	}
	for k, v := range calls {
		if v == 0 || strings.HasPrefix(k, "SQS.") { // the rig's pump receives and deletes
			delete(calls, k)
		}
	}
	if diff := cmp.Diff(wantAWS, calls); diff != "" {
		t.Errorf("AWS calls per job (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"CreateFleet"}, r.ec2.Calls()); diff != "" {
		t.Errorf("EC2 calls per job (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"POST /app/installations/*/access_tokens", "POST /orgs/*/actions/runners/generate-jitconfig"}, gh); diff != "" {
		t.Errorf("GitHub calls per job (-want +got):\n%s", diff)
	}
}

// pathShape replaces the ids and names of a GitHub path with *, for counting calls by route.
func pathShape(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if i > 0 && (parts[i-1] == "installations" || parts[i-1] == "orgs" || parts[i-1] == "runners" && s != "generate-jitconfig" || parts[i-1] == "repos") {
			parts[i] = "*"
		}
	}
	return strings.Join(parts, "/")
}

// TestUserOwnedRepo (local world): a job of a user's repository registers its runner on the
// repository (users have no org runners).
func TestUserOwnedRepo(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	m := r.msg(queue.ActionQueued, 5)
	m.Owner, m.OwnerType, m.Repo, m.InstallationID = "octocat", "User", "tools", usrInst
	r.send(m)
	r.drain(3)
	if j := r.job(5); j.State != state.Launched {
		t.Fatalf("job = %+v", j)
	}
	runners := r.sim.Runners()
	if len(runners) != 1 || runners[0].Owner != "octocat" || runners[0].Repo != "tools" {
		t.Errorf("runners = %+v, want one on octocat/tools", runners)
	}
}

// TestDuplicatesLaunchOnce (local world): the same queued message delivered five times in a row,
// then by two workers at once (a redelivery racing the first delivery), still yields exactly one
// instance and one runner.
func TestDuplicatesLaunchOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	m := r.msg(queue.ActionQueued, 2)
	r.sim.AddJob(toSimJob(m))
	ctx := context.Background()
	for i := range 5 {
		resp, _ := r.h.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{record("m", m, i+1)}})
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("delivery %d failed", i+1)
		}
	}
	m2 := r.msg(queue.ActionQueued, 3)
	r.sim.AddJob(toSimJob(m2))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			<-start // both workers really overlap
			// One of the two may be told to retry (the other holds the job); retry it like SQS would.
			for i := 1; i <= 3; i++ {
				resp, _ := r.h.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{record("m2", m2, i)}})
				if len(resp.BatchItemFailures) == 0 {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if diff := cmp.Diff([]string{"CreateFleet", "CreateFleet"}, r.ec2.Calls()); diff != "" {
		t.Errorf("EC2 calls for 2 jobs (-want +got):\n%s", diff)
	}
	jit := 0
	for _, c := range r.sim.Calls() {
		if strings.HasSuffix(c.Path, "/generate-jitconfig") {
			jit++
		}
	}
	if jit != 2 {
		t.Errorf("%d JIT registrations for 2 jobs, want 2", jit)
	}
	if n := len(r.instances()); n != 2 {
		t.Errorf("%d instances for 2 jobs, want 2", n)
	}
	if n := len(r.sim.Runners()); n != 2 {
		t.Errorf("%d runners for 2 jobs, want 2", n)
	}
	for _, id := range []int64{2, 3} {
		j := r.job(id)
		if j.State != state.Launched {
			t.Errorf("job %d is %s", id, j.State)
			continue
		}
		r.boot(j.InstanceID) // the delivered config is the live registration's
	}
}

// TestRejections (local world): user errors are recorded as rejected with the reason, at once,
// and launch nothing.
func TestRejections(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	cases := []struct {
		id     int64
		labels []string
		reason string
	}{
		{10, []string{"self-hosted", "spotrunner/linux-x64/gpu=1"}, `unknown option "gpu"`},
		{11, []string{"self-hosted", "spotrunner/windows"}, `unknown preset "windows"`},
		{12, []string{"self-hosted", "spotrunner/linux-x64", "gpu"}, `label "gpu" is not served by preset linux-x64`},
		{13, []string{"self-hosted", "spotrunner/linux-x64/cpu=128"}, "cpu=128 is over preset linux-x64's maximum of 64"},
	}
	for _, c := range cases {
		r.send(r.msg(queue.ActionQueued, c.id, c.labels...))
	}
	if fails := r.drain(3); fails[0] != 0 {
		t.Fatalf("user errors were retried: %v", fails)
	}
	for _, c := range cases {
		j := r.job(c.id)
		if j.State != state.Rejected || !strings.Contains(j.Reason, c.reason) {
			t.Errorf("job %d: %s %q, want rejected with %q", c.id, j.State, j.Reason, c.reason)
		}
	}
	if n := len(r.instances()); n != 0 {
		t.Errorf("%d instances launched for rejected jobs", n)
	}
}

// TestBatchSemantics (local world): in one batch, a failing message fails the later messages of
// its group but not other groups; a malformed message is acknowledged (and recorded when it names
// a job), never retried.
func TestBatchSemantics(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	a := r.msg(queue.ActionQueued, 20, "self-hosted", "spotrunner/linux-x64")
	aLater := r.msg(queue.ActionInProgress, 20)
	aLater.RunnerName = "spotrunner-i-000"
	b := r.msg(queue.ActionQueued, 21)
	r.sim.AddJob(toSimJob(a))
	r.sim.AddJob(toSimJob(b))
	r.sim.Fail("POST /app/installations/*/access_tokens", 1, 502) // a's Check fails, b's succeeds
	bad := events.SQSMessage{MessageId: "bad", Body: `{"version":9,"host":"` + r.host + `","jobId":22}`, Attributes: map[string]string{"MessageGroupId": "22"}}
	junk := events.SQSMessage{MessageId: "junk", Body: `{not json`, Attributes: map[string]string{"MessageGroupId": "23"}}

	resp, err := r.h.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{record("a1", a, 1), record("a2", aLater, 1), bad, record("b1", b, 1), junk}})
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	if diff := cmp.Diff([]string{"a1", "a2"}, failed); diff != "" {
		t.Errorf("batch failures (-want +got):\n%s", diff)
	}
	if j := r.job(21); j.State != state.Launched {
		t.Errorf("job of the other group: %s", j.State)
	}
	if j := r.job(22); j.State != state.Rejected || !strings.Contains(j.Reason, "malformed message") {
		t.Errorf("malformed message's job = %s %q", j.State, j.Reason)
	}
}

// TestRequirementsJob (local world): a cpu=4,ram=16 job launches through attribute-based
// selection on the preset's architecture (the layer in front of moto picks the type AWS would:
// the smallest with at least 4 vCPU and 16 GiB) and registers the label exactly as written.
func TestRequirementsJob(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.send(r.msg(queue.ActionQueued, 1, "self-hosted", "spotrunner/linux-x64/cpu=4,ram=16"))
	r.drain(2)
	j := r.job(1)
	live := r.instances()
	if j.State != state.Launched || len(live) != 1 || live[0].InstanceType != "m5.xlarge" {
		t.Fatalf("job %s, instances %+v; want launched on m5.xlarge", j.State, live)
	}
	if diff := cmp.Diff([]string{"self-hosted", "spotrunner/linux-x64/cpu=4,ram=16"}, r.sim.Runners()[0].Labels); diff != "" {
		t.Errorf("runner labels (-want +got):\n%s", diff)
	}
}
