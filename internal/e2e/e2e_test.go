package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/spotrunner/spotrunner/internal/awsgateway"
	"github.com/spotrunner/spotrunner/internal/ghessim"
	"github.com/spotrunner/spotrunner/internal/lambdasim"
	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/presets"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// Every scenario runs on a stack of its own (its own name, resources, functions and simulators),
// through the front door, and ends by checking the end state: each job where GitHub and the state
// table say it must be, no instance left, the queue and the DLQ empty, no JIT config left.

const (
	plain = "spotrunner/linux-x64"
	sized = "spotrunner/linux-x64/cpu=4,ram=16"
)

// fast are the provisioner's retry timings for scenarios that wait on a retry (the defaults back
// off to 5 minutes); reaper and ingest keep theirs.
var fast = map[string]map[string]string{
	"ProvisionerFunction": {"BACKOFF_BASE": "500ms", "BACKOFF_MAX": "3s", "OPERATOR_RETRY": "1s", "PRESET_CACHE_TTL": "1s"},
}

// logBuffer keeps a stack's event lines for the failure report.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	t0  time.Time
}

func (l *logBuffer) line(source, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, "%6.1fs %-14s %s\n", time.Since(l.t0).Seconds(), source, text)
}

// start runs a stack for the test; it fails (never skips) when the world is required and missing.
func start(t *testing.T, o Options) *Stack {
	t.Helper()
	world.Endpoint(t)
	var id [3]byte
	_, _ = rand.Read(id[:])
	o.StackName = "E2e-" + hex.EncodeToString(id[:])
	logs := &logBuffer{t0: time.Now()}
	o.Log = logs.line
	o.WorkDir = t.TempDir()
	if o.Instances == 0 {
		o.Instances = 1
	}
	if o.MinuteSeconds == 0 {
		o.MinuteSeconds = 2 // idle limit 10 "minutes" = 20 s, timeout 60 = 120 s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("start the stack: %v\n%s", err, logs.buf.String())
	}
	t.Cleanup(func() {
		s.Close()
		if t.Failed() {
			logs.mu.Lock()
			t.Logf("events:\n%s", logs.buf.String())
			logs.mu.Unlock()
			for _, fn := range []string{"IngestFunction", "ProvisionerFunction", "ReaperFunction", "AmiWatcherFunction"} {
				raw, _ := os.ReadFile(filepath.Join(o.WorkDir, "logs", fn+".log"))
				if len(raw) > 6000 {
					raw = raw[len(raw)-6000:]
				}
				t.Logf("%s log (tail):\n%s", fn, raw)
			}
		}
	})
	return s
}

// startReady is start, then waits until every preset has its first AMI.
func startReady(t *testing.T, o Options) *Stack {
	t.Helper()
	s := start(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.WaitPresetsReady(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// queue queues a job or ends the test.
func (s *Stack) queue(t *testing.T, name string, labels ...string) int64 {
	t.Helper()
	id, err := s.QueueJob(context.Background(), name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// settle waits until every job of want is in its state in the state table (and, for completed
// jobs, completed with success on GitHub), no instance of the stack is left and the queue and
// the DLQ are empty (a batch is deleted after its invocation returns), then checks that no JIT
// config is left.
func (s *Stack) settle(t *testing.T, within time.Duration, want map[int64]state.JobState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	got := map[int64]state.JobState{}
	var live []ec2types.Instance
	var depth string
	for {
		ok := true
		for id, st := range want {
			j, err := s.Job(ctx, id)
			if err == nil {
				got[id] = j.State
			}
			if got[id] != st {
				ok = false
			}
			if st == state.Completed {
				if gh, _ := s.GitHub.Job(id); gh.Conclusion != "success" {
					ok = false
				}
			}
		}
		var err error
		if live, err = s.LiveInstances(ctx); err == nil && len(live) > 0 {
			ok = false
		}
		if jobs, dead, err := s.QueueDepth(ctx); err != nil || jobs+dead > 0 {
			depth = fmt.Sprintf("queue %d, DLQ %d (%v)", jobs, dead, err)
			ok = false
		} else {
			depth = "queue and DLQ empty"
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			var ids []string
			for _, in := range live {
				ids = append(ids, aws.ToString(in.InstanceId)+" "+string(in.State.Name))
			}
			var all []string
			for job, ins := range s.launched(t) {
				for _, in := range ins {
					all = append(all, job+" "+aws.ToString(in.InstanceId)+" "+string(in.State.Name)+" "+aws.ToString(in.StateTransitionReason))
				}
			}
			for id := range want {
				j, err := s.Job(context.Background(), id)
				if err != nil || j.InstanceID == "" {
					continue
				}
				out, err := s.EC2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{j.InstanceID}})
				if err != nil {
					all = append(all, fmt.Sprintf("job %d's %s: %v", id, j.InstanceID, err))
					continue
				}
				for _, r := range out.Reservations {
					for _, in := range r.Instances {
						all = append(all, fmt.Sprintf("job %d's %s: %s deployment %q job %q", id, j.InstanceID, in.State.Name, InstanceTag(in, "spotrunner:deployment"), InstanceTag(in, "spotrunner:job")))
					}
				}
			}
			var sim []string
			for _, in := range s.Instances.Instances() {
				sim = append(sim, fmt.Sprintf("%s %s %s", in.ID, in.State, in.Ending))
			}
			t.Fatalf("not settled within %v: jobs %v, want %v; live instances %v; %s; launched %v; booted %v", within, got, want, ids, depth, all, sim)
		case <-time.After(300 * time.Millisecond):
		}
	}
	params, err := ssm.NewFromConfig(s.AWS).DescribeParameters(ctx, &ssm.DescribeParametersInput{ParameterFilters: []ssmtypes.ParameterStringFilter{
		{Key: aws.String("Path"), Option: aws.String("Recursive"), Values: []string{"/spotrunner/" + s.Options.StackName + "/jit"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(params.Parameters) != 0 {
		t.Errorf("%d JIT configs left in SSM, want none", len(params.Parameters))
	}
}

// launched is every instance the stack ever launched (terminated ones too), by job tag.
func (s *Stack) launched(t *testing.T) map[string][]ec2types.Instance {
	t.Helper()
	byJob := map[string][]ec2types.Instance{}
	pages := ec2.NewDescribeInstancesPaginator(s.EC2, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:spotrunner:deployment"), Values: []string{s.Options.StackName}},
	}})
	for pages.HasMorePages() {
		out, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				job := InstanceTag(in, "spotrunner:job")
				byJob[job] = append(byJob[job], in)
			}
		}
	}
	return byJob
}

func jobTag(id int64) string { return fmt.Sprintf("%s/%d", GitHubHost, id) }

func lifecycle(in ec2types.Instance) string {
	if in.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot {
		return "spot"
	}
	return "on-demand"
}

// TestHappyPath: for each spot strategy, a plain job and a cpu=4,ram=16 job run once each, on
// one instance each of the capacity the strategy buys, and everything is gone afterwards.
func TestHappyPath(t *testing.T) {
	t.Parallel()
	for strategy, want := range map[string]string{presets.SpotOnly: "spot", presets.SpotPreferred: "spot", presets.OnDemandOnly: "on-demand"} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			s := startReady(t, Options{Preset: func(e *presets.Entry) { e.Strategy = strategy }})
			a := s.queue(t, "build", "self-hosted", plain)
			b := s.queue(t, "test", "self-hosted", sized)
			s.settle(t, 90*time.Second, map[int64]state.JobState{a: state.Completed, b: state.Completed})
			byJob := s.launched(t)
			for _, id := range []int64{a, b} {
				ins := byJob[jobTag(id)]
				if len(ins) != 1 {
					t.Fatalf("job %d: %d instances, want 1", id, len(ins))
				}
				if got := lifecycle(ins[0]); got != want {
					t.Errorf("job %d ran on %s capacity, want %s", id, got, want)
				}
			}
			if typ := byJob[jobTag(b)][0].InstanceType; typ == "m5.large" {
				t.Errorf("the cpu=4,ram=16 job ran on %s, which has 2 vCPUs", typ)
			}
		})
	}
}

// TestDuplicateDeliveries: GitHub delivers the same queued webhook five times (its redeliveries,
// a retrying proxy): one instance, one run.
func TestDuplicateDeliveries(t *testing.T) {
	t.Parallel()
	s := startReady(t, Options{})
	ctx := context.Background()
	id := s.queue(t, "build", "self-hosted", plain)
	for range 4 {
		if _, status, err := s.GitHub.SendWorkflowJob(ctx, s.Deployment.URL+"/webhook", id, "queued"); err != nil || status/100 != 2 {
			t.Fatalf("redeliver: %d %v", status, err)
		}
	}
	s.settle(t, 60*time.Second, map[int64]state.JobState{id: state.Completed})
	if n := len(s.launched(t)[jobTag(id)]); n != 1 {
		t.Errorf("%d instances for the job, want 1", n)
	}
}

// TestRunnerTaken: GitHub gives our runner to another job whose labels fit (one that is not ours,
// and one with fewer labels than the runner's): the job that lost its runner gets another, and
// every job runs once.
func TestRunnerTaken(t *testing.T) {
	t.Parallel()
	t.Run("by a job that is not ours", func(t *testing.T) {
		t.Parallel()
		s := startReady(t, Options{Tuning: fast})
		// Queued first, so it is the oldest job that fits when our runner comes online.
		foreign := s.queue(t, "foreign", "self-hosted")
		ours := s.queue(t, "ours", "self-hosted", sized)
		s.settle(t, 90*time.Second, map[int64]state.JobState{ours: state.Completed})
		if gh, _ := s.GitHub.Job(foreign); gh.Conclusion != "success" || !strings.HasPrefix(gh.RunnerName, "spotrunner-") {
			t.Errorf("foreign job: %+v, want completed on one of our runners", gh)
		}
		if n := len(s.launched(t)[jobTag(ours)]); n != 2 {
			t.Errorf("our job had %d instances, want 2 (the taken one and the relaunch)", n)
		}
	})
	t.Run("by a job with fewer labels", func(t *testing.T) {
		t.Parallel()
		s := startReady(t, Options{Tuning: fast})
		few := s.queue(t, "few", "self-hosted", plain)
		many := s.queue(t, "many", "self-hosted", sized)
		s.settle(t, 120*time.Second, map[int64]state.JobState{few: state.Completed, many: state.Completed})
	})
}

// TestCancelledBeforeStart: a job cancelled while its instance boots: the instance goes, nothing
// runs, the job is recorded cancelled.
func TestCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	s := startReady(t, Options{})
	ctx := context.Background()
	id := s.queue(t, "build", "self-hosted", plain)
	if err := s.GitHub.CancelJob(ctx, id); err != nil {
		t.Fatal(err)
	}
	s.settle(t, 60*time.Second, map[int64]state.JobState{id: state.Cancelled})
	if gh, _ := s.GitHub.Job(id); gh.RunnerName != "" {
		t.Errorf("the cancelled job ran on %s", gh.RunnerName)
	}
}

// TestSpotCapacityMissing: EC2 has no spot capacity (fleet Errors, HTTP 200): spotPreferred buys
// on-demand at once; spotOnly waits and launches spot once capacity is back.
func TestSpotCapacityMissing(t *testing.T) {
	t.Parallel()
	t.Run("spotPreferred falls back to on-demand", func(t *testing.T) {
		t.Parallel()
		s := startReady(t, Options{})
		s.Gateway.FailFleet(1000, "spot", "InsufficientInstanceCapacity", "There is no Spot capacity available that matches your request.")
		id := s.queue(t, "build", "self-hosted", plain)
		s.settle(t, 60*time.Second, map[int64]state.JobState{id: state.Completed})
		ins := s.launched(t)[jobTag(id)]
		if len(ins) != 1 || lifecycle(ins[0]) != "on-demand" {
			t.Errorf("instances %d, want one on-demand", len(ins))
		}
	})
	t.Run("spotOnly waits for spot", func(t *testing.T) {
		t.Parallel()
		s := startReady(t, Options{Tuning: fast, Preset: func(e *presets.Entry) { e.Strategy = presets.SpotOnly }})
		s.Gateway.FailFleet(3, "spot", "InsufficientInstanceCapacity", "There is no Spot capacity available that matches your request.")
		id := s.queue(t, "build", "self-hosted", plain)
		s.settle(t, 90*time.Second, map[int64]state.JobState{id: state.Completed})
		ins := s.launched(t)[jobTag(id)]
		if len(ins) != 1 || lifecycle(ins[0]) != "spot" {
			t.Errorf("instances %d, want one spot", len(ins))
		}
	})
}

// TestGitHubDown: GitHub's API answers 503 for a minute while a job is queued: the job waits and
// runs once GitHub is back.
func TestGitHubDown(t *testing.T) {
	t.Parallel()
	// Backoff as deployed (2 s doubling) but capped at 10 s, so the job is retried soon after the
	// outage ends and well before its 20 receives (maxReceiveCount) are used up.
	s := startReady(t, Options{Tuning: map[string]map[string]string{"ProvisionerFunction": {"BACKOFF_MAX": "10s"}}})
	s.GitHub.Outage(time.Minute)
	id := s.queue(t, "build", "self-hosted", plain)
	s.settle(t, 150*time.Second, map[int64]state.JobState{id: state.Completed})
}

// TestLostWebhook: the queued webhook never reached the front door; the reaper finds the failed
// delivery, redelivers it, and the job runs.
func TestLostWebhook(t *testing.T) {
	t.Parallel()
	s := startReady(t, Options{})
	ctx := context.Background()
	id := int64(9001)
	if err := s.GitHub.QueueJobUndelivered(ctx, ghJob(id, "build", "self-hosted", plain)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Job(ctx, id); err == nil {
		t.Fatal("the job is known before the reaper ran")
	}
	if err := s.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	s.settle(t, 60*time.Second, map[int64]state.JobState{id: state.Completed})
}

// TestNoAMIYet: a preset whose first build has not run: its job waits (no instance), and launches
// once the build makes the preset ready.
func TestNoAMIYet(t *testing.T) {
	t.Parallel()
	s := start(t, Options{Tuning: fast, NoFirstBuild: []string{"linux-x64"}})
	ctx := context.Background()
	id := s.queue(t, "build", "self-hosted", plain)
	time.Sleep(5 * time.Second)
	if n := len(s.launched(t)); n != 0 {
		t.Fatalf("%d instances launched for a preset with no AMI", n)
	}
	// Waiting for an AMI, the job is queued, or provisioning (claimed, and waiting), with no
	// instance.
	if j, err := s.Job(ctx, id); err != nil || (j.State != state.Queued && j.State != state.Provisioning) || j.InstanceID != "" {
		t.Fatalf("job %+v (%v), want queued or provisioning, waiting, with no instance", j, err)
	}
	if err := s.StartBuild(ctx, "linux-x64"); err != nil {
		t.Fatal(err)
	}
	s.settle(t, 90*time.Second, map[int64]state.JobState{id: state.Completed})
}

func ghJob(id int64, name string, labels ...string) ghessim.Job {
	return ghessim.Job{ID: id, Owner: Owner, Repo: Repo, Name: name, Labels: labels}
}

// TestPoisonToDLQ: a job that fails for a reason only an operator can fix (its preset's document
// is broken) is retried until its message lands in the DLQ; once the document is fixed, a redrive
// (queue.Redrive, what `spotrunner dlq redrive` runs) brings it back and it completes.
func TestPoisonToDLQ(t *testing.T) {
	t.Parallel()
	s := start(t, Options{Tuning: fast})
	ctx := context.Background()
	api := ssm.NewFromConfig(s.AWS)
	name := presets.ParameterPrefix(s.Options.StackName) + "linux-x64"
	good, err := api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(`{"name":"linux-x64","architecture":"sparc"}`),
		Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	id := s.queue(t, "build", "self-hosted", plain)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		_, dead, err := s.QueueDepth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if dead == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the poison message did not reach the DLQ within 3 minutes")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n := len(s.launched(t)); n != 0 {
		t.Fatalf("%d instances launched for a broken preset", n)
	}
	if _, err := api.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: good.Parameter.Value,
		Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	dlq, _ := s.Deployment.Resolver.Ref("JobDeadLetterQueue")
	jobs, _ := s.Deployment.Resolver.Ref("JobQueue")
	moved, err := queue.Redrive(ctx, sqs.NewFromConfig(s.AWS), queue.RedriveOptions{DLQ: dlq, Queue: jobs})
	if err != nil || moved != 1 {
		t.Fatalf("redrive: %d moved, %v; want 1", moved, err)
	}
	s.settle(t, 60*time.Second, map[int64]state.JobState{id: state.Completed})
}

// TestProvisionerCrash: the provisioner's execution environment dies as it sends the JIT config
// (after the launch, which is recorded; the request never lands). The job's claim holds it until
// its lease ends and SQS gives the message again after its visibility timeout; the retry finds
// the launched instance, still waiting for its config, and delivers it: one instance, one run.
func TestProvisionerCrash(t *testing.T) {
	t.Parallel()
	// As deployed the retry comes after the 360 s visibility timeout and the 2 min lease, while
	// the instance waits 10 min for its config; here: 10 s, the shortest lease (1 min), and an
	// instance that waits well past both. Retries of a held job back off to 5 s at most, so the
	// one after the lease ends comes soon.
	s := startReady(t, Options{JITWaitSeconds: 150, Tuning: map[string]map[string]string{"ProvisionerFunction": {"CLAIM_LEASE": "1m", "BACKOFF_MAX": "5s"}}})
	ctx := context.Background()
	jobs, _ := s.Deployment.Resolver.Ref("JobQueue")
	if _, err := sqs.NewFromConfig(s.AWS).SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(jobs),
		Attributes: map[string]string{"VisibilityTimeout": "10"}}); err != nil {
		t.Fatal(err)
	}
	var crashed atomic.Int32
	provisioner := s.Deployment.Functions["ProvisionerFunction"]
	s.Gateway.SetCallHook(func(c awsgateway.Call) bool {
		// The presets are ready, so the only PutParameter now is the provisioner's JIT config.
		if c.Service == "ssm" && c.Operation == "PutParameter" && crashed.Load() == 0 && provisioner.Crash() > 0 {
			crashed.Store(1)
			return true
		}
		return false
	})
	id := s.queue(t, "build", "self-hosted", plain)
	s.settle(t, 150*time.Second, map[int64]state.JobState{id: state.Completed})
	if crashed.Load() != 1 {
		t.Fatal("the provisioner was never crashed")
	}
	if n := len(s.launched(t)[jobTag(id)]); n != 1 {
		t.Errorf("%d instances for the job, want 1", n)
	}
}

// TestBurst: a burst of jobs queued at once, half plain and half cpu=4,ram=16 (whose runners a
// plain job may take), under a cap of runners (MaxRunners), with the reaper on its schedule:
// every job runs exactly once and nothing is left. The issue asks for 200 jobs; on this 2-core
// machine 200 real bootstraps (an AWS CLI each) take minutes, over make test's budget, so the
// suite runs 30; SPOTRUNNER_BURST=200 runs 200 (make e2e-burst).
func TestBurst(t *testing.T) {
	t.Parallel()
	jobs := 30
	if n, err := strconv.Atoi(os.Getenv("SPOTRUNNER_BURST")); err == nil && n > 0 {
		jobs = n
	}
	capacity := max(10, jobs/4)
	within := 4*time.Minute + time.Duration(jobs)*2*time.Second
	const minute = 6 // seconds in one of the bootstrap's and the reaper's minutes
	s := startReady(t, Options{
		Instances:     2,
		MinuteSeconds: minute,
		ReaperEvery:   5 * minute * time.Second, // the template's rate(5 minutes), scaled
		Parameters:    map[string]string{"MaxRunners": fmt.Sprint(capacity)},
		Tuning:        map[string]map[string]string{"ProvisionerFunction": {"BACKOFF_MAX": "10s"}},
	})
	began := time.Now()
	want := map[int64]state.JobState{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Go(func() {
			labels := []string{"self-hosted", plain}
			if i%2 == 1 {
				labels = []string{"self-hosted", sized}
			}
			id := s.queue(t, fmt.Sprintf("job-%d", i), labels...)
			mu.Lock()
			want[id] = state.Completed
			mu.Unlock()
		})
	}
	wg.Wait()
	if d := time.Since(began); d > time.Second {
		t.Logf("queued %d jobs in %v (want within a second)", jobs, d)
	}
	s.settle(t, within, want)
	t.Logf("%d jobs ran in %v", jobs, time.Since(began).Round(time.Second))
	// A plain job may take a cpu=4,ram=16 job's runner (its labels fit), so a job may run on
	// another job's instance and the other job on a relaunch: count runs, not instances per job.
	runners := map[string]int64{}
	for id := range want {
		gh, _ := s.GitHub.Job(id)
		if other, dup := runners[gh.RunnerName]; dup {
			t.Errorf("jobs %d and %d both ran on runner %s", other, id, gh.RunnerName)
		}
		runners[gh.RunnerName] = id
	}
	launched := 0
	for _, ins := range s.launched(t) {
		launched += len(ins)
	}
	t.Logf("%d instances launched for %d jobs", launched, jobs)
	// What the burst cost in AWS calls (the instances' AWS CLI included), most frequent first.
	calls := map[string]int{}
	for _, c := range s.Gateway.Calls() {
		calls[c.Service+" "+c.Operation]++
	}
	ops := slices.SortedFunc(maps.Keys(calls), func(a, b string) int { return calls[b] - calls[a] })
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, " %s %d (%.1f/job);", op, calls[op], float64(calls[op])/float64(jobs))
	}
	t.Logf("AWS calls:%s", b.String())
	if launched < jobs {
		t.Errorf("%d instances for %d jobs", launched, jobs)
	}
}

// TestMain builds the five functions once, before the scenarios start their stacks in parallel
// (each Start's build is then a no-op instead of a dozen concurrent links of the same binaries).
func TestMain(m *testing.M) {
	if os.Getenv("AWS_ENDPOINT_URL") != "" {
		root, err := findRoot()
		if err == nil {
			_, err = lambdasim.Build(context.Background(), root, filepath.Join(root, ".cache", "lambdasim", runtime.GOOS+"_"+runtime.GOARCH))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build the functions:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}
