package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/ec2world"
	"github.com/spotrunner/spotrunner/internal/ghessim"
	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/presets"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// errCrash stands for the function dying (timeout, out of memory) right after a call succeeded.
var errCrash = errors.New("function timed out")

// crashAfterLaunch launches for real, then "crashes" once before the caller can record anything;
// hideFind makes the instance invisible to Find, as DescribeInstances can be right after a launch.
type crashAfterLaunch struct {
	Launcher
	mu       sync.Mutex
	crashed  bool
	hideFind bool
}

func (c *crashAfterLaunch) Launch(ctx context.Context, r fleet.Request) (fleet.Instance, error) {
	inst, err := c.Launcher.Launch(ctx, r)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && !c.crashed {
		c.crashed = true
		return fleet.Instance{}, errCrash
	}
	return inst, err
}

func (c *crashAfterLaunch) Find(ctx context.Context, tags map[string]string) ([]fleet.Instance, error) {
	if c.hideFind {
		return nil, nil
	}
	return c.Launcher.Find(ctx, tags)
}

// loseJITAnswer registers for real, then loses GitHub's answer once (the call timed out after
// GitHub acted), so the retry meets a 409 for a runner whose config nobody has.
type loseJITAnswer struct {
	Registrar
	mu   sync.Mutex
	lost bool
}

func (l *loseJITAnswer) GenerateJITConfig(ctx context.Context, t githubapp.Target, name string, lbls []string, group int64) (githubapp.JITConfig, error) {
	cfg, err := l.Registrar.GenerateJITConfig(ctx, t, name, lbls, group)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && !l.lost {
		l.lost = true
		return githubapp.JITConfig{}, githubapp.ErrUnavailable
	}
	return cfg, err
}

const jitRoute = "POST /orgs/*/actions/runners/generate-jitconfig"

// TestFaults (local world with faults injected in front of moto and in the simulator): each
// failure is classified right and the job ends as written down — launched after retries with
// exactly one instance and one runner, or failed / still waiting with nothing leaked.
func TestFaults(t *testing.T) {
	t.Parallel()
	ice := "InsufficientInstanceCapacity"
	tests := []struct {
		name         string
		strategy     string
		installation int64
		setup        func(r *rig)
		wantRounds   []int // failed messages per pump (a capacity wait is acknowledged and queued again)
		wantState    state.JobState
		wantReason   string
		wantCapacity string // of the one instance, when launched
		wantRunners  int
		wantLive     int // live instances at the end
	}{
		{name: "spotOnly: spot capacity, then spot", strategy: presets.SpotOnly,
			setup:      func(r *rig) { r.ec2.FailFleet(1, "spot", ice, "no spot capacity") },
			wantRounds: []int{0, 0}, wantState: state.Launched, wantCapacity: "spot", wantRunners: 1, wantLive: 1},
		{name: "spotPreferred: spot capacity falls back to on-demand", strategy: presets.SpotPreferred,
			setup:      func(r *rig) { r.ec2.FailFleet(1, "spot", ice, "no spot capacity") },
			wantRounds: []int{0}, wantState: state.Launched, wantCapacity: "on-demand", wantRunners: 1, wantLive: 1},
		{name: "spotPreferred: neither spot nor on-demand, then spot", strategy: presets.SpotPreferred,
			setup: func(r *rig) {
				r.ec2.FailFleet(1, "spot", ice, "no spot capacity")
				r.ec2.FailFleet(1, "on-demand", ice, "no on-demand capacity")
			},
			wantRounds: []int{0, 0}, wantState: state.Launched, wantCapacity: "spot", wantRunners: 1, wantLive: 1},
		{name: "onDemandOnly: capacity, then on-demand", strategy: presets.OnDemandOnly,
			setup:      func(r *rig) { r.ec2.FailFleet(1, "on-demand", ice, "no capacity") },
			wantRounds: []int{0, 0}, wantState: state.Launched, wantCapacity: "on-demand", wantRunners: 1, wantLive: 1},
		{name: "RequestLimitExceeded from the API", strategy: presets.SpotPreferred,
			setup: func(r *rig) {
				r.ec2.FailCall(ec2world.CreateFleet, 1, ec2world.APIError("RequestLimitExceeded", "Request limit exceeded."))
			},
			wantRounds: []int{1, 0}, wantState: state.Launched, wantCapacity: "spot", wantRunners: 1, wantLive: 1},
		{name: "RequestLimitExceeded in fleet Errors", strategy: presets.SpotOnly,
			setup:      func(r *rig) { r.ec2.FailFleet(1, "spot", "RequestLimitExceeded", "Request limit exceeded.") },
			wantRounds: []int{1, 0}, wantState: state.Launched, wantCapacity: "spot", wantRunners: 1, wantLive: 1},
		{name: "GitHub 500 on registration resumes with the same instance",
			setup:      func(r *rig) { r.sim.Fail(jitRoute, 1, 500) },
			wantRounds: []int{1, 0}, wantState: state.Launched, wantCapacity: "spot", wantRunners: 1, wantLive: 1},
		{name: "GitHub 502 on registration",
			setup:      func(r *rig) { r.sim.Fail(jitRoute, 1, 502) },
			wantRounds: []int{1, 0}, wantState: state.Launched, wantCapacity: "spot", wantRunners: 1, wantLive: 1},
		{name: "GitHub secondary rate limit on registration",
			setup: func(r *rig) {
				r.sim.Fail(jitRoute, 1, 403, ghessim.WithRateLimit())
				r.pause = 1500 * time.Millisecond // go-github holds calls until the limit's reset, 1 s ahead
			},
			wantRounds: []int{1, 0}, wantState: state.Launched, wantCapacity: "spot", wantRunners: 1, wantLive: 1},
		{name: "GitHub timeout after registering: 409 on retry, re-registered",
			setup:      func(r *rig) { r.sim.Fail(jitRoute, 1, 0, ghessim.WithDelay(3*time.Second)) },
			wantRounds: []int{1, 0}, wantState: state.Launched, wantCapacity: "spot", wantRunners: 1, wantLive: 1},
		{name: "answer lost after registering: 409 on retry, re-registered",
			setup:      func(r *rig) { r.h.github = &loseJITAnswer{Registrar: r.h.github} },
			wantRounds: []int{1, 0}, wantState: state.Launched, wantCapacity: "spot", wantRunners: 1, wantLive: 1},
		{name: "GitHub 422 on registration: instance terminated, job failed",
			setup:      func(r *rig) { r.sim.Fail(jitRoute, 1, 422) },
			wantRounds: []int{0}, wantState: state.Failed, wantReason: "runner registration refused by GitHub", wantRunners: 0, wantLive: 0},
		{name: "spotPreferred: spot launch not authorized is an operator error, never on-demand", strategy: presets.SpotPreferred,
			setup: func(r *rig) {
				r.ec2.FailFleet(3, "spot", "UnauthorizedOperation", "You are not authorized to perform this operation. Encoded authorization failure message: AbCd")
			},
			wantRounds: []int{1, 1}, wantState: state.Provisioning, wantRunners: 0, wantLive: 0},
		{name: "spotOnly: spot launch not authorized is an operator error", strategy: presets.SpotOnly,
			setup: func(r *rig) {
				r.ec2.FailFleet(3, "spot", "UnauthorizedOperation", "You are not authorized to perform this operation. Encoded authorization failure message: AbCd")
			},
			wantRounds: []int{1, 1}, wantState: state.Provisioning, wantRunners: 0, wantLive: 0},
		{name: "App not installed: operator error, nothing launched", installation: 999,
			wantRounds: []int{1, 1, 1}, wantState: state.Provisioning, wantRunners: 0, wantLive: 0},
		{name: "crash between CreateFleet and the state write: found by tags",
			setup:      func(r *rig) { r.h.fleet = &crashAfterLaunch{Launcher: r.h.fleet} },
			wantRounds: []int{1, 0}, wantState: state.Launched, wantCapacity: "spot", wantRunners: 1, wantLive: 1},
		{name: "crash between CreateFleet and the state write: same ClientToken, same instance",
			setup:      func(r *rig) { r.h.fleet = &crashAfterLaunch{Launcher: r.h.fleet, hideFind: true} },
			wantRounds: []int{1, 0}, wantState: state.Launched, wantCapacity: "spot", wantRunners: 1, wantLive: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			if tt.strategy != "" {
				p := r.presets["linux-x64"]
				p.Strategy = tt.strategy
				r.presets["linux-x64"] = p
			}
			if tt.setup != nil {
				tt.setup(r)
			}
			m := r.msg(queue.ActionQueued, 1)
			if tt.installation != 0 {
				m.InstallationID = tt.installation
			}
			r.send(m)
			rounds := r.drain(len(tt.wantRounds))
			if diff := cmp.Diff(tt.wantRounds, rounds); diff != "" {
				t.Errorf("failed messages per round (-want +got):\n%s", diff)
			}
			j := r.job(1)
			if j.State != tt.wantState || !strings.Contains(j.Reason, tt.wantReason) {
				t.Errorf("job = %s %q, want %s %q", j.State, j.Reason, tt.wantState, tt.wantReason)
			}
			live := r.instances()
			if len(live) != tt.wantLive {
				t.Fatalf("%d live instances, want %d: %+v", len(live), tt.wantLive, live)
			}
			if tt.wantLive == 1 && (live[0].CapacityType != tt.wantCapacity || live[0].ID != j.InstanceID) {
				t.Errorf("instance %s (%s), want the job's %s (%s)", live[0].ID, live[0].CapacityType, j.InstanceID, tt.wantCapacity)
			}
			runners := r.sim.Runners()
			if len(runners) != tt.wantRunners {
				t.Fatalf("%d runners, want %d: %+v", len(runners), tt.wantRunners, runners)
			}
			if tt.wantRunners == 1 {
				if delivered, _ := r.jitDelivered(j.InstanceID); !delivered || runners[0].Name != queue.RunnerName(j.InstanceID) {
					t.Errorf("runner %s, config delivered %v; want the instance's", runners[0].Name, delivered)
				}
				// The delivered config is the live registration's: the instance can connect with it.
				r.boot(j.InstanceID)
				r.assign(1, j.InstanceID)
				r.complete(1, j.InstanceID, "success")
				r.drain(3)
			}
			r.countsAgree()
			// No slot leaks, whatever happened on the way.
			if total := r.slots(); total != 0 {
				t.Errorf("%d runner slots still counted at the end, want 0", total)
			}
		})
	}
}

// TestOperatorErrorReachesDLQ (local world): a job whose owner has not installed the App fails
// every try; with the queue's redrive policy (maxReceiveCount 3 here) it lands in the DLQ after
// three receives, and no instance was ever launched for it.
func TestOperatorErrorReachesDLQ(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	dlq, err := r.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(world.Name(t, "dlq") + ".fifo"),
		Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := r.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(r.queue), Attributes: map[string]string{
		"RedrivePolicy": `{"deadLetterTargetArn":"` + attrs.Attributes["QueueArn"] + `","maxReceiveCount":"3"}`}}); err != nil {
		t.Fatal(err)
	}
	m := r.msg(queue.ActionQueued, 1)
	m.InstallationID = 999
	r.send(m)
	if rounds := r.drain(5); !cmp.Equal([]int{1, 1, 1, 0}, rounds) {
		t.Errorf("failed messages per round = %v, want three failures then an empty queue", rounds)
	}
	out, err := r.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: dlq.QueueUrl, MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 {
		t.Fatalf("%d messages in the DLQ, want 1", len(out.Messages))
	}
	if got, _ := queue.Decode([]byte(aws.ToString(out.Messages[0].Body))); got.JobID != 1 {
		t.Errorf("DLQ message = %+v", got)
	}
	if n := len(r.instances()); n != 0 {
		t.Errorf("%d instances launched for a job the App cannot serve", n)
	}
}

// failOncePublisher fails its first Publish (SQS unavailable), then publishes for real.
type failOncePublisher struct {
	Publisher
	mu     sync.Mutex
	failed bool
}

func (f *failOncePublisher) Publish(ctx context.Context, m queue.Message) error {
	f.mu.Lock()
	first := !f.failed
	f.failed = true
	f.mu.Unlock()
	if first {
		return errors.New("sqs: service unavailable")
	}
	return f.Publisher.Publish(ctx, m)
}

// TestRelaunchSurvivesPublishFailure (local world): job 1's runner is taken by job 3 and the
// relaunch cannot be queued the first time. The in_progress event is retried, its follow-ups run
// again, the relaunch goes out, and job 1 runs on a new instance.
func TestRelaunchSurvivesPublishFailure(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	inst := r.launched(1)
	r.h.requeue = &failOncePublisher{Publisher: r.h.requeue}
	r.sim.AddJob(toSimJob(r.msg(queue.ActionQueued, 3)))
	r.assign(3, inst[1])
	rounds := r.drain(5)
	if rounds[0] != 1 {
		t.Errorf("rounds %v: the in_progress event should fail once", rounds)
	}
	j := r.job(1)
	if j.State != state.Launched || j.Attempt != 1 || j.InstanceID == inst[1] {
		t.Fatalf("job 1 = %s attempt %d on %s, want relaunched", j.State, j.Attempt, j.InstanceID)
	}
}

// flakyDB fails the first write of a runner item (DynamoDB throttling right after CreateFleet).
type flakyDB struct {
	state.API
	mu     sync.Mutex
	failed bool
}

func (f *flakyDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	for _, it := range in.TransactItems {
		if it.Put == nil {
			continue
		}
		if sk, ok := it.Put.Item["sk"].(*dbtypes.AttributeValueMemberS); ok && sk.Value == "RUNNER" {
			f.mu.Lock()
			first := !f.failed
			f.failed = true
			f.mu.Unlock()
			if first {
				return nil, &dbtypes.ProvisionedThroughputExceededException{Message: aws.String("throttled")}
			}
		}
	}
	return f.API.TransactWriteItems(ctx, in, optFns...)
}

// TestRunnerRecordedAfterFailedWrite (local world): the instance is launched but recording it
// (job, runner item and slot in one transaction) fails. The retry finds the instance by its tags,
// records it with the slot, registers, and the job launches on that one instance; when it
// completes the slot is free again.
func TestRunnerRecordedAfterFailedWrite(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.h.cfg.MaxRunners = 1
	r.store = state.New(&flakyDB{API: world.NewDynamoDB(world.AWS(t))}, r.table).WithClock(func() time.Time { return r.now })
	r.h.jobs = r.store
	r.send(r.msg(queue.ActionQueued, 1))
	if rounds := r.drain(3); rounds[0] != 1 {
		t.Errorf("rounds %v, want the first to fail", rounds)
	}
	j := r.job(1)
	ri, err := r.store.Runner(context.Background(), j.InstanceID)
	if j.State != state.Launched || err != nil || !ri.HoldsSlot || ri.RunnerID == 0 {
		t.Fatalf("job %s, runner %+v (%v); want launched with its runner recorded, holding the slot", j.State, ri, err)
	}
	if n := len(r.instances()); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
	r.boot(j.InstanceID)
	r.assign(1, j.InstanceID)
	r.complete(1, j.InstanceID, "success")
	r.drain(3)
	if total := r.slots(); total != 0 {
		t.Errorf("%d slots counted after the job completed, want 0", total)
	}
}
