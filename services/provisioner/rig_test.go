package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/middleware"

	"github.com/spotrunner/spotrunner/internal/ec2world"
	"github.com/spotrunner/spotrunner/internal/ghessim"
	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/presets"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

const (
	appID   = 4242
	orgInst = 11
	usrInst = 12
)

// staticPresets is a preset source without SSM (libs/presets tests its own store against moto):
// tests here need presets naming the launch template their own moto world created.
type staticPresets map[string]presets.Preset

func (s staticPresets) Get(_ context.Context, name string) (presets.Preset, error) {
	p, ok := s[name]
	if !ok {
		return presets.Preset{}, presets.ErrUnknown
	}
	return p, nil
}

// callCounter counts AWS API operations as the code calls them ("DynamoDB.PutItem"), once per
// call whatever the SDK's own retries do underneath.
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) install(cfg *aws.Config) {
	cfg.APIOptions = append(cfg.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("countCalls",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				c.mu.Lock()
				c.calls[awsmiddleware.GetServiceID(ctx)+"."+awsmiddleware.GetOperationName(ctx)]++
				c.mu.Unlock()
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	})
}

func (c *callCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

// rig is one provisioner against its own corner of the local world: a fresh state table, FIFO
// queue, VPC/subnets/launch template and AMIs in moto (behind ec2world, which gives moto AWS's
// CreateFleet behaviour and injects faults), the GHES simulator with the org acme (installation
// 11) and the user octocat (installation 12), and a host name no other test uses.
type rig struct {
	t       *testing.T
	h       *Handler
	host    string
	sim     *ghessim.Server
	ec2     *ec2world.EC2
	ec2raw  *ec2.Client
	world   ec2world.World
	store   *state.Store
	db      *world.DynamoDB // conflicts can be injected (InjectConflicts)
	ssm     *world.SSM      // refuses what SSM refuses (value sizes per tier)
	sqs     *sqs.Client
	queue   string
	table   string
	aws     *callCounter
	now     time.Time
	presets staticPresets
	pause   time.Duration // between drain rounds, for faults that name a retry time
}

func newRig(t *testing.T) *rig {
	t.Helper()
	cfg := world.AWS(t)
	counter := &callCounter{calls: map[string]int{}}
	counter.install(&cfg)
	r := &rig{t: t, host: strings.ToLower(world.Name(t, "ghes")) + ".example", aws: counter, now: time.Now().UTC()}
	r.ec2raw = ec2.NewFromConfig(cfg)
	r.ec2 = ec2world.New(r.ec2raw)
	r.world = ec2world.Setup(t, r.ec2raw)
	r.table = world.StateTable(t, cfg)
	r.db = world.NewDynamoDB(cfg)
	r.store = state.New(r.db, r.table).WithClock(func() time.Time { return r.now })
	r.ssm = world.NewSSM(cfg)
	r.sqs = sqs.NewFromConfig(cfg)
	r.queue = world.FIFOQueue(t, cfg)

	sim, base := ghessim.Start(t, ghessim.Options{AppID: appID, AppPublicKey: &ghessim.AppKey().PublicKey, WebhookSecret: []byte("s"), Host: r.host})
	sim.AddInstallation(orgInst, "acme", "Organization")
	sim.AddRepo("acme", "app", true)
	sim.AddInstallation(usrInst, "octocat", "User")
	sim.AddRepo("octocat", "tools", true)
	r.sim = sim
	keyPEM := ghessim.AppKeyPEM()
	app, err := githubapp.New(githubapp.Config{ServerURL: base, AppID: appID, Timeout: 2 * time.Second},
		func(context.Context) ([]byte, error) { return keyPEM, nil })
	if err != nil {
		t.Fatal(err)
	}

	r.presets = staticPresets{
		"linux-x64": {Name: "linux-x64", Architecture: "x86_64", InstanceTypes: []string{"m5.large", "m5.xlarge"},
			Strategy: presets.SpotPreferred, TimeoutMinutes: 60, IdleMinutes: 10, DiskSizeGB: 100, MaxCPU: 64, MaxRAMGiB: 256,
			LaunchTemplateID: r.world.LaunchTemplateID},
		"linux-arm64": {Name: "linux-arm64", Architecture: "arm64", InstanceTypes: []string{"m6g.large", "m6g.xlarge"},
			Strategy: presets.SpotPreferred, TimeoutMinutes: 60, IdleMinutes: 10, DiskSizeGB: 100, MaxCPU: 64, MaxRAMGiB: 256,
			LaunchTemplateID: r.world.LaunchTemplateID},
	}
	for name, arch := range map[string]string{"linux-x64": "x86_64", "linux-arm64": "arm64"} {
		if err := r.store.PutPresetImage(context.Background(), state.PresetImage{Name: name, Status: "ready", AMIID: r.world.Images[arch], UpdatedAt: r.now}); err != nil {
			t.Fatal(err)
		}
	}
	r.h = &Handler{
		jobs:       r.store,
		presets:    r.presets,
		fleet:      fleet.New(r.ec2),
		github:     app,
		jit:        JITStore{api: r.ssm, Deployment: "test-stack"},
		requeue:    queue.NewPublisher(r.sqs, r.queue),
		visibility: r.sqs,
		queueURL:   r.queue,
		backoff:    Backoff{}, // retry at once: tests pump again instead of waiting
		now:        func() time.Time { return r.now },
		cfg: Settings{Deployment: "test-stack", SubnetIDs: r.world.SubnetIDs, RunnerGroupID: 1, NoAMIWait: 90 * time.Minute, Lease: 2 * time.Minute,
			Partition: "aws", Region: "us-east-1", AccountID: "123456789012", ConfigDeadline: 8 * time.Minute},
	}
	return r
}

// msg is a job event of job id with the given labels (default: self-hosted + spotrunner/linux-x64)
// for acme/app.
func (r *rig) msg(action string, id int64, jobLabels ...string) queue.Message {
	if len(jobLabels) == 0 {
		jobLabels = []string{"self-hosted", "spotrunner/linux-x64"}
	}
	return queue.Message{
		Version: queue.Version, Action: action, DeliveryID: "d-" + strconv.FormatInt(id, 10) + "-" + action, Host: r.host,
		InstallationID: orgInst, Owner: "acme", OwnerType: "Organization", Repo: "app", JobID: id, RunID: 1, RunAttempt: 1,
		Labels: jobLabels, ReceivedAt: r.now,
	}
}

// send puts m on the real FIFO queue, as ingest does; the simulator learns the job too.
func (r *rig) send(m queue.Message) {
	r.t.Helper()
	if m.Action == queue.ActionQueued && m.Attempt == 0 {
		if _, known := r.sim.Job(m.JobID); !known {
			r.sim.AddJob(ghessim.Job{ID: m.JobID, RunID: m.RunID, RunAttempt: m.RunAttempt, Owner: m.Owner, Repo: m.Repo, Labels: m.Labels})
		}
	}
	if err := queue.NewPublisher(r.sqs, r.queue).Publish(context.Background(), m); err != nil {
		r.t.Fatal(err)
	}
}

// pump plays the Lambda event source mapping once: receive up to 10 messages, hand them to the
// handler as one batch, delete the ones it did not report failed. It returns how many failed.
func (r *rig) pump() int {
	r.t.Helper()
	ctx := context.Background()
	out, err := r.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(r.queue), MaxNumberOfMessages: 10,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if len(out.Messages) == 0 {
		return 0
	}
	var ev events.SQSEvent
	for _, m := range out.Messages {
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
			Attributes: m.Attributes, EventSourceARN: "arn:aws:sqs:us-east-1:123456789012:jobs.fifo",
		})
	}
	resp, err := r.h.Handle(ctx, ev)
	if err != nil {
		r.t.Fatal(err)
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, m := range out.Messages {
		if !failed[aws.ToString(m.MessageId)] {
			if _, err := r.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(r.queue), ReceiptHandle: m.ReceiptHandle}); err != nil {
				r.t.Fatal(err)
			}
		}
	}
	return len(failed)
}

// drain pumps until the queue is empty or rounds run out; it returns the failures per round.
func (r *rig) drain(rounds int) []int {
	r.t.Helper()
	var fails []int
	for i := range rounds {
		if i > 0 {
			time.Sleep(r.pause)
		}
		n := r.pump()
		fails = append(fails, n)
		if n == 0 && r.empty() {
			break
		}
	}
	return fails
}

func (r *rig) empty() bool {
	out, err := r.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(r.queue), AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
}

func (r *rig) job(id int64) state.Job {
	r.t.Helper()
	j, err := r.store.Job(context.Background(), r.host, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return j
}

// instances returns the live instances launched for this rig's jobs.
func (r *rig) instances() []fleet.Instance {
	r.t.Helper()
	found, err := fleet.New(r.ec2raw).Find(context.Background(), map[string]string{"spotrunner:host": r.host})
	if err != nil {
		r.t.Fatal(err)
	}
	return found
}

// jitDelivered reports whether instanceID's config waits in SSM, and its instance-arn tag.
func (r *rig) jitDelivered(instanceID string) (bool, string) {
	r.t.Helper()
	ctx := context.Background()
	if _, err := r.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(r.h.jit.name(instanceID))}); err != nil {
		return false, ""
	}
	tags, err := r.ssm.ListTagsForResource(ctx, &ssm.ListTagsForResourceInput{ResourceType: "Parameter", ResourceId: aws.String(r.h.jit.name(instanceID))})
	if err != nil {
		r.t.Fatal(err)
	}
	for _, tg := range tags.TagList {
		if aws.ToString(tg.Key) == "spotrunner:instance-arn" {
			return true, aws.ToString(tg.Value)
		}
	}
	return true, ""
}

// boot plays the instance's bootstrap for a launched job: read and delete its JIT config and
// connect the runner to the simulator (online, idle).
func (r *rig) boot(instanceID string) {
	r.t.Helper()
	ctx := context.Background()
	p, err := r.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(r.h.jit.name(instanceID)), WithDecryption: aws.Bool(true)})
	if err != nil {
		r.t.Fatalf("boot %s: no JIT config: %v", instanceID, err)
	}
	if _, err := r.ssm.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(r.h.jit.name(instanceID))}); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.sim.ConnectRunner(aws.ToString(p.Parameter.Value)); err != nil {
		r.t.Fatalf("boot %s: %v", instanceID, err)
	}
}

// assign plays GitHub giving job id to the runner on instanceID, then ingest forwarding the
// in_progress event.
func (r *rig) assign(id int64, instanceID string) {
	r.t.Helper()
	if err := r.sim.AssignJob(id, queue.RunnerName(instanceID)); err != nil {
		r.t.Fatal(err)
	}
	m := r.msg(queue.ActionInProgress, id)
	m.RunnerName = queue.RunnerName(instanceID)
	r.send(m)
}

// complete plays the job finishing on its runner (or cancelled before start when instanceID is "").
func (r *rig) complete(id int64, instanceID, conclusion string) {
	r.t.Helper()
	m := r.msg(queue.ActionCompleted, id)
	m.Conclusion = conclusion
	if instanceID != "" {
		if err := r.sim.CompleteJob(id, conclusion); err != nil {
			r.t.Fatal(err)
		}
		m.RunnerName = queue.RunnerName(instanceID)
	}
	r.send(m)
}

// slots is the number of runners counted against the total cap.
func (r *rig) slots() int {
	r.t.Helper()
	total, _, err := r.store.Slots(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return total
}

// record is an SQS record of m as the event source mapping would deliver it (for tests that
// build batches by hand).
func record(id string, m queue.Message, receives int) events.SQSMessage {
	body, _ := json.Marshal(m)
	return events.SQSMessage{MessageId: id, Body: string(body), Attributes: map[string]string{
		"MessageGroupId": m.GroupID(), "ApproximateReceiveCount": strconv.Itoa(receives)}}
}

// toSimJob is the simulator's record of m's job: it must know a job to assign it to a runner.
func toSimJob(m queue.Message) ghessim.Job {
	return ghessim.Job{ID: m.JobID, RunID: m.RunID, RunAttempt: m.RunAttempt, Owner: m.Owner, Repo: m.Repo, Labels: m.Labels}
}

// countsAgree checks the status counts (state.CountPhases, from the sparse phase index) against
// the table itself, read whole (a test may scan): jobs queued or provisioning, runners idle, runners
// busy.
func (r *rig) countsAgree() {
	r.t.Helper()
	ctx := context.Background()
	got, err := r.store.CountPhases(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	var want state.Counts
	out, err := r.db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(r.table), ConsistentRead: aws.Bool(true)})
	if err != nil {
		r.t.Fatal(err)
	}
	for _, item := range out.Items {
		var it struct {
			SK    string `dynamodbav:"sk"`
			State string `dynamodbav:"state"`
		}
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			r.t.Fatal(err)
		}
		switch {
		case it.SK == "JOB" && (it.State == string(state.Queued) || it.State == string(state.Provisioning)):
			want.Waiting++
		case it.SK == "RUNNER" && it.State == string(state.Idle):
			want.Idle++
		case it.SK == "RUNNER" && it.State == string(state.Busy):
			want.Busy++
		}
	}
	if got != want {
		r.t.Errorf("status counts %+v, the table says %+v", got, want)
	}
}
