package lambdasim

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// pollerRig is a FIFO queue in moto with a 1 s visibility timeout, the echo Lambda recording what
// it receives, and a poller between them, started by start (once the test's messages are on the
// queue, so that batches hold what the test means) and stopped when the test ends.
type pollerRig struct {
	api      *sqs.Client
	url, arn string
	record   string
	poller   *SQSPoller
	stop     func()
}

func newPollerRig(t *testing.T, o SQSPollerOptions) *pollerRig {
	t.Helper()
	ctx := context.Background()
	cfg := world.AWS(t)
	api := sqs.NewFromConfig(cfg)
	q, err := api.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(world.Name(t, "poll") + ".fifo"),
		Attributes: map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	r := &pollerRig{api: api, url: aws.ToString(q.QueueUrl), arn: attrs.Attributes["QueueArn"], record: filepath.Join(t.TempDir(), "events.jsonl")}
	instances := max(o.Pollers, 1)
	o.QueueURL, o.QueueARN = r.url, r.arn
	o.Function = startEcho(t, FunctionOptions{Instances: instances, Env: map[string]string{"ECHO_RECORD": r.record}})
	o.OnError = func(err error) { t.Logf("poller: %v", err) }
	if r.poller, err = NewSQSPoller(api, o); err != nil {
		t.Fatal(err)
	}
	r.stop = func() {}
	return r
}

func (r *pollerRig) start(t *testing.T) {
	run, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.poller.Run(run)
	}()
	r.stop = sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
	t.Cleanup(r.stop)
}

// send puts body on the queue in group.
func (r *pollerRig) send(t *testing.T, group, body string) {
	t.Helper()
	if _, err := r.api.SendMessage(context.Background(), &sqs.SendMessageInput{
		QueueUrl: aws.String(r.url), MessageBody: aws.String(body),
		MessageGroupId: aws.String(group), MessageDeduplicationId: aws.String(body),
	}); err != nil {
		t.Fatal(err)
	}
}

// received returns each record the function was given, in order.
func (r *pollerRig) received(t *testing.T) []events.SQSMessage {
	var out []events.SQSMessage
	for _, rec := range recorded[events.SQSEvent](t, r.record) {
		out = append(out, rec.Event.Records...)
	}
	return out
}

// left returns how many messages are still on the queue, visible or in flight.
func (r *pollerRig) left(t *testing.T) int {
	t.Helper()
	out, err := r.api.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(r.url),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range out.Attributes {
		k, _ := strconv.Atoi(v)
		n += k
	}
	return n
}

// waitFor polls cond until it holds, or fails the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
	}
}

func count(recs []events.SQSMessage, body string) (n int) {
	for _, r := range recs {
		if r.Body == body {
			n++
		}
	}
	return n
}

// TestSQSPollerPartialBatch (local world): fixtures are ok-1 and fail-2 in group g1 and ok-3 in
// group g2 on a FIFO queue, given to the echo Lambda (which reports every "fail" record failed)
// with ReportBatchItemFailures and batch size 10. The three arrive in one batch, shaped as
// Lambda's SQS event; ok-1 and ok-3 are deleted and never seen again; fail-2 stays, comes back
// after the visibility timeout with a receive count of 2, and is all that is left on the queue.
func TestSQSPollerPartialBatch(t *testing.T) {
	t.Parallel()
	r := newPollerRig(t, SQSPollerOptions{BatchSize: 10, ReportBatchItemFailures: true})
	r.send(t, "g1", "ok-1")
	r.send(t, "g1", "fail-2")
	r.send(t, "g2", "ok-3")
	r.start(t)
	waitFor(t, 15*time.Second, "fail-2 was not given to the function a second time", func() bool {
		return count(r.received(t), "fail-2") >= 2
	})
	r.stop()

	recs := r.received(t)
	var first []string
	for _, rec := range recorded[events.SQSEvent](t, r.record)[0].Event.Records {
		first = append(first, rec.Body)
	}
	if diff := cmp.Diff([]string{"ok-1", "fail-2", "ok-3"}, first); diff != "" {
		t.Errorf("first batch (-want +got):\n%s", diff)
	}
	if count(recs, "ok-1") != 1 || count(recs, "ok-3") != 1 {
		t.Errorf("ok-1 given %d times, ok-3 %d times, want once each (deleted after the first batch)", count(recs, "ok-1"), count(recs, "ok-3"))
	}
	var again events.SQSMessage
	for _, rec := range recs {
		if rec.Body == "fail-2" {
			again = rec
		}
	}
	if got := again.Attributes["ApproximateReceiveCount"]; got != strconv.Itoa(count(recs, "fail-2")) {
		t.Errorf("fail-2's last receive count %q, want %d", got, count(recs, "fail-2"))
	}
	if n := r.left(t); n != 1 {
		t.Errorf("%d messages left on the queue, want fail-2 alone", n)
	}
	if st := r.poller.Stats(); st.Deleted != 2 || st.FailedBatches != 0 {
		t.Errorf("stats %+v, want 2 deleted and no failed batch", st)
	}

	// The record as Lambda shapes it.
	rec := recs[0]
	sum := md5.Sum([]byte("ok-1"))
	for _, c := range []struct{ field, got, want string }{
		{"eventSource", rec.EventSource, "aws:sqs"},
		{"eventSourceARN", rec.EventSourceARN, r.arn},
		{"awsRegion", rec.AWSRegion, "us-east-1"},
		{"md5OfBody", rec.Md5OfBody, hex.EncodeToString(sum[:])},
		{"MessageGroupId", rec.Attributes["MessageGroupId"], "g1"},
		{"MessageDeduplicationId", rec.Attributes["MessageDeduplicationId"], "ok-1"},
		{"ApproximateReceiveCount", rec.Attributes["ApproximateReceiveCount"], "1"},
	} {
		if c.got != c.want {
			t.Errorf("record %s = %q, want %q", c.field, c.got, c.want)
		}
	}
	for _, attr := range []string{"SequenceNumber", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} {
		if rec.Attributes[attr] == "" {
			t.Errorf("record has no attribute %s", attr)
		}
	}
	if rec.MessageId == "" || rec.ReceiptHandle == "" {
		t.Errorf("record without messageId or receiptHandle: %+v", rec)
	}
}

// TestSQSPollerFunctionError (local world): fixtures are crash (group g1) and ok-9 (group g2),
// received in one batch by the echo Lambda, which fails the invocation on crash. Lambda deletes
// nothing of a failed batch: both come back after the visibility timeout, and both are still on
// the queue when the poller stops.
func TestSQSPollerFunctionError(t *testing.T) {
	t.Parallel()
	r := newPollerRig(t, SQSPollerOptions{ReportBatchItemFailures: true})
	r.send(t, "g1", "crash")
	r.send(t, "g2", "ok-9")
	r.start(t)
	waitFor(t, 15*time.Second, "the failed batch did not come back", func() bool {
		recs := r.received(t)
		return count(recs, "crash") >= 2 && count(recs, "ok-9") >= 2
	})
	r.stop()
	if n := r.left(t); n != 2 {
		t.Errorf("%d messages left on the queue, want both", n)
	}
	if st := r.poller.Stats(); st.Deleted != 0 || st.FailedBatches < 2 {
		t.Errorf("stats %+v, want nothing deleted and at least 2 failed batches", st)
	}
}

// TestSQSPollerFIFOGroups (local world): fixtures are slow-a, slow-b, slow-c in group g1 and slow-d,
// slow-e in group g2 (each takes the echo Lambda 300 ms), polled one message per batch by three
// pollers. moto's FIFO receive hides a group while one of its messages is in flight, so no two
// batches of one group overlap, whatever the number of pollers (as Lambda keeps it), each group
// is processed in order, and the two groups run side by side.
func TestSQSPollerFIFOGroups(t *testing.T) {
	t.Parallel()
	r := newPollerRig(t, SQSPollerOptions{BatchSize: 1, Pollers: 3})
	for _, m := range []struct{ group, body string }{{"g1", "slow-a"}, {"g2", "slow-d"}, {"g1", "slow-b"}, {"g2", "slow-e"}, {"g1", "slow-c"}} {
		r.send(t, m.group, m.body)
	}
	r.start(t)
	waitFor(t, 15*time.Second, "not every message was processed", func() bool { return r.left(t) == 0 })
	r.stop()

	starts := map[string][]int64{}
	order := map[string][]string{}
	for _, rec := range recorded[events.SQSEvent](t, r.record) {
		for _, m := range rec.Event.Records {
			g := m.Attributes["MessageGroupId"]
			starts[g] = append(starts[g], rec.AtMs)
			order[g] = append(order[g], m.Body)
		}
	}
	if diff := cmp.Diff(map[string][]string{"g1": {"slow-a", "slow-b", "slow-c"}, "g2": {"slow-d", "slow-e"}}, order); diff != "" {
		t.Errorf("order per group (-want +got):\n%s", diff)
	}
	for g, s := range starts {
		for i := 1; i < len(s); i++ {
			if gap := s[i] - s[i-1]; gap < 300 {
				t.Errorf("group %s: a batch started %d ms after the previous one, which takes 300 ms: two were in flight", g, gap)
			}
		}
	}
	overlap := false
	for _, a := range starts["g1"] {
		overlap = overlap || slices.ContainsFunc(starts["g2"], func(b int64) bool { return b-a < 300 && a-b < 300 })
	}
	if !overlap {
		t.Errorf("groups never ran side by side: g1 %v, g2 %v", starts["g1"], starts["g2"])
	}
}
