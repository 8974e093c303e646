package main

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/awsgateway"
	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// t0 is when the fixture's first job was received; the CLI's clock is half an hour later.
var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// cli runs the CLI with args (the world's AWS settings come from the environment, as for a user)
// and returns its exit code, stdout and stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	a := &app{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" },
		now: func() time.Time { return t0.Add(30 * time.Minute) }, httpClient: http.DefaultClient}
	code := a.run(context.Background(), args)
	return code, stdout.String(), stderr.String()
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

// populate writes the fixture's jobs and runners through the state package, as the services do:
//
//	101 acme/app  completed on the runner launched for it (m5.large, spot)
//	102 acme/app  running on the runner launched for 103 (c6i.xlarge, on-demand)
//	103 acme/app  queued again, waiting (its runner went to 102)
//	104 acme/web  rejected (unknown preset)
//	105 acme/web  failed (launch refused)
//	106 acme/app  completed three hours before t0 (outside the default --since 1h)
func populate(t *testing.T, store *state.Store, clock *time.Time) {
	t.Helper()
	ctx := context.Background()
	at := func(d time.Duration) { *clock = t0.Add(d) }
	job := func(id int64, repo, name string, labels ...string) state.Job {
		return state.Job{Host: "github.com", ID: id, Owner: "acme", OwnerType: "Organization", Repo: repo, Name: name,
			InstallationID: 7, Labels: labels, LabelSet: labels, ReceivedAt: *clock}
	}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	create := func(j state.Job) {
		t.Helper()
		if _, _, err := store.CreateJob(ctx, j, state.Queued); err != nil {
			t.Fatal(err)
		}
	}
	launch := func(id int64, instance, typ, capacity string) {
		t.Helper()
		j, err := store.Claim(ctx, "github.com", id, 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		*clock = clock.Add(2500 * time.Millisecond)
		must(store.RecordLaunch(ctx, j, state.Runner{InstanceID: instance, Host: "github.com", JobID: id, Owner: "acme", InstallationID: 7,
			Preset: "linux-x64", Labels: j.Labels, LabelSet: j.LabelSet, State: state.Idle, RunnerName: queue.RunnerName(instance),
			CapacityType: capacity, InstanceType: typ, LaunchedAt: *clock, Deadline: clock.Add(time.Hour)}, 2*time.Minute))
		*clock = clock.Add(500 * time.Millisecond)
		must(store.Transition(ctx, "github.com", id, []state.JobState{state.Provisioning}, state.Launched, state.Change{RunnerName: queue.RunnerName(instance), Preset: "linux-x64"}))
	}
	run := func(id int64, instance string) {
		t.Helper()
		must(store.Transition(ctx, "github.com", id, []state.JobState{state.Queued, state.Provisioning, state.Launched}, state.Running,
			state.Change{RunnerName: queue.RunnerName(instance), InstanceID: instance}))
		must(store.UpdateRunner(ctx, instance, []state.RunnerState{state.Idle}, state.Busy, state.RunnerChange{BusyJobID: id}))
	}

	at(-3 * time.Hour)
	create(job(106, "app", "nightly", "self-hosted", "spotrunner/linux-x64"))
	launch(106, "i-0f6", "m5.large", "spot")
	at(-3*time.Hour + 12*time.Second)
	run(106, "i-0f6")
	at(-3*time.Hour + 5*time.Minute)
	must(store.Transition(ctx, "github.com", 106, []state.JobState{state.Running}, state.Completed, state.Change{RunnerName: queue.RunnerName("i-0f6")}))

	at(0)
	create(job(101, "app", "build", "self-hosted", "spotrunner/linux-x64"))
	at(time.Second)
	launch(101, "i-0a1", "m5.large", "spot")
	at(14 * time.Second)
	run(101, "i-0a1")
	at(2 * time.Minute)
	must(store.Transition(ctx, "github.com", 101, []state.JobState{state.Running}, state.Completed, state.Change{RunnerName: queue.RunnerName("i-0a1")}))

	at(time.Minute)
	create(job(102, "app", "test (plain)", "self-hosted", "spotrunner/linux-x64"))
	at(time.Minute + 100*time.Millisecond)
	create(job(103, "app", "test (sized)", "self-hosted", "spotrunner/linux-x64/cpu=4,ram=16"))
	at(time.Minute + time.Second)
	launch(103, "i-0c3", "c6i.xlarge", "on-demand")
	at(time.Minute + 20*time.Second)
	run(102, "i-0c3")
	must(store.Transition(ctx, "github.com", 103, []state.JobState{state.Launched}, state.Queued,
		state.Change{ClearInstance: true, NextAttempt: true, Reason: "waiting: runner cap reached (10 of 10 running)"}))

	at(5 * time.Minute)
	create(job(104, "web", "gpu", "self-hosted", "spotrunner/gpu"))
	must(store.Transition(ctx, "github.com", 104, []state.JobState{state.Queued}, state.Rejected, state.Change{Reason: `unknown preset "gpu"; known presets: linux-arm64, linux-x64`}))

	at(6 * time.Minute)
	create(job(105, "web", "lint", "self-hosted", "spotrunner/linux-arm64"))
	at(6*time.Minute + time.Second)
	must(store.Claim(ctx, "github.com", 105, 2*time.Minute))
	must(store.Transition(ctx, "github.com", 105, []state.JobState{state.Provisioning}, state.Failed,
		state.Change{Preset: "linux-arm64", Reason: "launch refused: UnauthorizedOperation: You are not authorized to perform this operation."}))
}

// fixture is the local world with a populated state table, and the flags that name it.
func fixture(t *testing.T) []string {
	t.Helper()
	cfg := world.AWS(t)
	table := world.StateTable(t, cfg)
	clock := t0
	populate(t, state.New(world.NewDynamoDB(cfg), table).WithClock(func() time.Time { return clock }), &clock)
	return []string{"--table", table, "--github-host", "github.com"}
}

// TestJobs (local world): the fixture's jobs listed and shown, as tables and as JSON, against
// golden files; filters by time, state and repository; one job's timeline for each way a job
// ends or waits.
func TestJobs(t *testing.T) {
	t.Parallel()
	flags := fixture(t)
	for _, tt := range []struct {
		golden string
		args   []string
	}{
		{"jobs.golden", []string{"jobs"}},
		{"jobs.json.golden", []string{"jobs", "-o", "json"}},
		{"jobs-since-6h.golden", []string{"jobs", "--since", "6h"}},
		{"jobs-web.golden", []string{"jobs", "--repo", "Acme/Web"}},
		{"jobs-pending.golden", []string{"jobs", "--state", "queued,running", "--limit", "1"}},
		{"jobs-none.golden", []string{"jobs", "--state", "cancelled"}},
		{"show-101.golden", []string{"jobs", "show", "101"}},
		{"show-102.golden", []string{"jobs", "show", "github.com/102"}},
		{"show-102.json.golden", []string{"jobs", "show", "102", "--output", "json"}},
		{"show-103.golden", []string{"jobs", "show", "103"}},
		{"show-104.golden", []string{"jobs", "show", "104"}},
		{"show-105.golden", []string{"jobs", "show", "105"}},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := cli(t, append(tt.args, flags...)...)
			if code != exitOK {
				t.Fatalf("exit %d, stderr: %s", code, errOut)
			}
			golden(t, tt.golden, out)
		})
	}
	code, _, errOut := cli(t, append([]string{"jobs", "show", "999"}, flags...)...)
	if code != exitFailure || !strings.Contains(errOut, "job 999 of github.com: not in the state table") {
		t.Errorf("an unknown job: exit %d, stderr %q; want 1 and a reason", code, errOut)
	}
}

// TestStatus: the status document the status service's README golden holds, served over HTTP:
// printed for people, and as served with -o json. An error answer is a failure with its body.
func TestStatus(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../services/status/testdata/readme.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken/status" {
			http.Error(w, `{"status":"error","message":"state temporarily unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(doc)
	}))
	defer srv.Close()
	code, out, errOut := cli(t, "status", "--status-url", srv.URL+"/status")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden(t, "status.golden", out)
	if code, out, _ = cli(t, "status", "--status-url", srv.URL+"/status", "-o", "json"); code != exitOK || out != string(doc) && out != string(doc)+"\n" {
		t.Errorf("-o json: exit %d, output differs from the document as served:\n%s", code, out)
	}
	code, _, errOut = cli(t, "status", "--status-url", srv.URL+"/broken/status")
	if code != exitFailure || !strings.Contains(errOut, "503") || !strings.Contains(errOut, "state temporarily unavailable") {
		t.Errorf("a 503: exit %d, stderr %q; want 1 with the status and the message", code, errOut)
	}
}

// TestLabelsCheck: the workflow checker's test workflows against the repository's presets file:
// findings as a table and as JSON (golden), exit 1 when a label would be rejected, 0 when only
// expressions are left unchecked.
func TestLabelsCheck(t *testing.T) {
	t.Parallel()
	const data = "../../internal/workflows/testdata"
	presets := []string{"--presets", "../../presets.yaml"}
	for _, tt := range []struct {
		golden string
		args   []string
		code   int
	}{
		{"labels.golden", []string{data + "/list.yml", data + "/rejected.yml"}, exitFailure},
		{"labels.json.golden", []string{data + "/rejected.yml", "-o", "json"}, exitFailure},
		{"labels-dir.golden", []string{data + "/repo"}, exitFailure},
		// The README's example: a workflow directory with the usual mistakes.
		{"labels-readme.golden", []string{"testdata/workflows"}, exitFailure},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := cli(t, append(append([]string{"labels", "check"}, tt.args...), presets...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, errOut)
			}
			golden(t, tt.golden, out)
		})
	}
	clean := filepath.Join(t.TempDir(), "ci.yml")
	if err := os.WriteFile(clean, []byte("on: push\njobs:\n  build:\n    runs-on: [self-hosted, \"spotrunner/linux-x64/cpu=4,ram=16\"]\n    steps: [{run: make}]\n  matrix:\n    runs-on: ${{ matrix.os }}\n    steps: [{run: make}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := cli(t, append([]string{"labels", "check", clean}, presets...)...)
	if code != exitOK || !strings.Contains(out, "unchecked") || !strings.Contains(out, "1 file checked: 0 errors.") {
		t.Errorf("a valid workflow with an expression: exit %d, output:\n%s", code, out)
	}
}

// TestUsage: usage mistakes exit 2 with a hint, never 1; --help exits 0.
func TestUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"frobnicate"},
		{"jobs", "--since", "yesterday"},
		{"jobs", "--since", "-1h"},
		{"jobs", "--state", "stuck"},
		{"jobs", "--repo", "app"},
		{"jobs", "show"},
		{"jobs", "show", "abc"},
		{"jobs", "show", "1", "2"},
		{"dlq", "redrive", "--max", "-1"},
		{"dlq", "purge"},
		{"labels", "check"},
		{"status", "--output", "yaml"},
		{"status", "extra"},
	} {
		code, _, errOut := cli(t, args...)
		if code != exitUsage || !strings.Contains(errOut, "spotrunner --help") {
			t.Errorf("%v: exit %d, stderr %q; want 2 with a hint", args, code, errOut)
		}
	}
	for _, args := range [][]string{{"--help"}, {"jobs", "--help"}, {"jobs", "show", "--help"}, {"dlq", "redrive", "--help"}, {"labels", "check", "--help"}} {
		if code, out, _ := cli(t, args...); code != exitOK || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d, output %q; want 0 and the usage", args, code, out)
		}
	}
}

// TestStackOutputs (local world): with --stack only, every resource comes from the stack's
// outputs and the GitHub host from its GitHubServerUrl parameter; a missing stack says which
// flag to give instead.
func TestStackOutputs(t *testing.T) {
	t.Parallel()
	cfg := world.AWS(t)
	flags := fixture(t)
	table := flags[1]
	stack := world.Name(t, "stack")
	tmpl := `{"Parameters": {"GitHubServerUrl": {"Type": "String"}, "Table": {"Type": "String"}},
"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
"Outputs": {"StateTableName": {"Value": {"Ref": "Table"}}, "JobQueueUrl": {"Value": {"Ref": "Queue"}}}}`
	if _, err := cloudformation.NewFromConfig(cfg).CreateStack(context.Background(), &cloudformation.CreateStackInput{
		StackName: aws.String(stack), TemplateBody: aws.String(tmpl),
		Parameters: []cftypes.Parameter{
			{ParameterKey: aws.String("GitHubServerUrl"), ParameterValue: aws.String("https://GitHub.com")},
			{ParameterKey: aws.String("Table"), ParameterValue: aws.String(table)},
		},
	}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "jobs", "show", "101", "--stack", stack)
	if code != exitOK || !strings.Contains(out, "Job 101 on github.com") {
		t.Errorf("jobs show with --stack: exit %d, stderr %s, output:\n%s", code, errOut, out)
	}
	code, _, errOut = cli(t, "dlq", "list", "--stack", stack)
	if code != exitFailure || !strings.Contains(errOut, "has no JobDeadLetterQueueUrl (give --dlq-url)") {
		t.Errorf("an output the stack lacks: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = cli(t, "jobs", "--stack", "NoSuchStack")
	if code != exitFailure || !strings.Contains(errOut, "read stack NoSuchStack (or give --table)") {
		t.Errorf("a missing stack: exit %d, stderr %q", code, errOut)
	}
}

// TestDLQ (local world): a DLQ holding three job messages of different groups and a malformed
// one is listed (and left as it was); a redrive with --dry-run moves nothing; a redrive cut off
// after the first message was moved and the second sent but not deleted (the gateway in front
// of moto drops every later DeleteMessage) fails with exit 1, and run again moves the rest: the
// job queue then holds each message once, in its group, and the DLQ none.
func TestDLQ(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := world.AWS(t)
	client := sqs.NewFromConfig(cfg)
	dlq := world.FIFOQueue(t, cfg)
	jobs := world.FIFOQueue(t, cfg)
	gw, err := awsgateway.Start(ctx, awsgateway.Options{MotoURL: world.Endpoint(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	flags := []string{"--dlq-url", dlq, "--queue-url", jobs, "--endpoint-url", gw.URL()}

	if code, out, errOut := cli(t, append([]string{"dlq", "list"}, flags...)...); code != exitOK || out != "The dead-letter queue is empty.\n" {
		t.Errorf("an empty DLQ: exit %d, output %q, stderr %q", code, out, errOut)
	}
	publish := queue.NewPublisher(client, dlq)
	want := map[int64]string{}
	for _, m := range []queue.Message{
		{Version: 1, Action: "queued", Host: "github.com", Owner: "acme", OwnerType: "Organization", Repo: "app", JobID: 201, RunID: 1, InstallationID: 7, Labels: []string{"self-hosted", "spotrunner/linux-x64"}, ReceivedAt: t0},
		{Version: 1, Action: "queued", Host: "github.com", Owner: "acme", OwnerType: "Organization", Repo: "app", JobID: 202, RunID: 1, InstallationID: 7, Labels: []string{"self-hosted", "spotrunner/linux-x64"}, ReceivedAt: t0},
		{Version: 1, Action: "completed", Host: "github.com", Owner: "acme", OwnerType: "Organization", Repo: "web", JobID: 203, RunID: 2, InstallationID: 7, Labels: []string{"self-hosted", "spotrunner/linux-arm64"}, ReceivedAt: t0, RunnerName: "spotrunner-i-0a1", RunnerID: 9, Conclusion: "success"},
	} {
		if err := publish.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		want[m.JobID] = m.GroupID()
	}
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(dlq), MessageBody: aws.String(`{"version":1`),
		MessageGroupId: aws.String("junk"), MessageDeduplicationId: aws.String("junk")}); err != nil {
		t.Fatal(err)
	}
	// Message ids and send times differ per run: placeholders of the same width keep the
	// table's columns as printed.
	normalize := func(s string) string {
		s = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`).ReplaceAllString(s, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
		s = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ`).ReplaceAllString(s, "yyyy-mm-dd hh:mm:ssZ")
		return regexp.MustCompile(`"\d{4}-\d\d-\d\dT[0-9:.]+Z"`).ReplaceAllString(s, `"<sent>"`)
	}
	code, out, errOut := cli(t, append([]string{"dlq", "list"}, flags...)...)
	if code != exitOK {
		t.Fatalf("dlq list: exit %d: %s", code, errOut)
	}
	golden(t, "dlq-list.golden", normalize(out))
	if code, out, errOut = cli(t, append([]string{"dlq", "list", "-o", "json"}, flags...)...); code != exitOK {
		t.Fatalf("dlq list -o json: exit %d: %s", code, errOut)
	}
	golden(t, "dlq-list.json.golden", normalize(out))
	if code, out, _ = cli(t, append([]string{"dlq", "redrive", "--dry-run"}, flags...)...); code != exitOK {
		t.Errorf("dry run: exit %d, output:\n%s", code, out)
	}
	golden(t, "dlq-redrive-dry-run.golden", normalize(out))
	if n := depth(t, client, jobs); n != 0 {
		t.Fatalf("the dry run moved %d messages", n)
	}

	var deletes atomic.Int32
	gw.SetCallHook(func(c awsgateway.Call) bool {
		return c.Service == "sqs" && c.Operation == "DeleteMessage" && deletes.Add(1) > 1
	})
	code, out, errOut = cli(t, append([]string{"dlq", "redrive"}, flags...)...)
	if code != exitFailure || !strings.Contains(errOut, "was sent back but not deleted from the DLQ") || !strings.Contains(out, "Moved 1 message.") {
		t.Fatalf("interrupted redrive: exit %d, output %q, stderr %q; want 1 after one message", code, out, errOut)
	}
	gw.SetCallHook(nil)
	if code, out, errOut = cli(t, append([]string{"dlq", "redrive"}, flags...)...); code != exitOK || !strings.Contains(out, "Moved 3 messages.") {
		t.Fatalf("redrive again: exit %d, output %q, stderr %q; want the other 3 moved", code, out, errOut)
	}
	if n := depth(t, client, dlq); n != 0 {
		t.Errorf("%d messages left in the DLQ", n)
	}
	got := map[int64]string{}
	bodies := 0
	for {
		recv, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(jobs), MaxNumberOfMessages: 10, VisibilityTimeout: 60,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameMessageGroupId}})
		if err != nil {
			t.Fatal(err)
		}
		if len(recv.Messages) == 0 {
			break
		}
		for _, m := range recv.Messages {
			bodies++
			if msg, err := queue.Decode([]byte(aws.ToString(m.Body))); err == nil {
				if _, dup := got[msg.JobID]; dup {
					t.Errorf("job %d's message is in the queue twice", msg.JobID)
				}
				got[msg.JobID] = m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" || bodies != 4 {
		t.Errorf("job queue: %d messages; job messages by group (-want +got):\n%s", bodies, diff)
	}
}

func depth(t *testing.T, client *sqs.Client, url string) int {
	t.Helper()
	out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range out.Attributes {
		k, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		n += k
	}
	return n
}
