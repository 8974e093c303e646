package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// failingDelete fails the DeleteMessage calls after the first ok ones: a redrive interrupted
// between sending a message back and deleting it from the DLQ.
type failingDelete struct {
	*sqs.Client
	ok int
}

func (f *failingDelete) DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	if f.ok == 0 {
		return nil, errors.New("connection reset")
	}
	f.ok--
	return f.Client.DeleteMessage(ctx, in, optFns...)
}

// drain receives every message of a FIFO queue (deleting it) and returns group:body pairs.
func drain(t *testing.T, api *sqs.Client, url string) []string {
	t.Helper()
	var got []string
	for {
		out, err := api.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			slices.Sort(got)
			return got
		}
		for _, m := range out.Messages {
			got = append(got, m.Attributes["MessageGroupId"]+":"+aws.ToString(m.Body))
			if _, err := api.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestRedrive (local world: moto's SQS FIFO queues): messages go back with their group and body,
// Max is honoured, a dry run moves nothing, and a redrive interrupted after a send and before its
// delete, run again, loses nothing and doubles nothing.
func TestRedrive(t *testing.T) {
	t.Parallel()
	cfg := world.AWS(t)
	api := sqs.NewFromConfig(cfg)
	ctx := context.Background()
	dlq, jobs := world.FIFOQueue(t, cfg), world.FIFOQueue(t, cfg)
	var want []string
	for i := range 5 {
		group, body := fmt.Sprintf("job-%d", i), fmt.Sprintf(`{"n":%d}`, i)
		want = append(want, group+":"+body)
		// As the queue's redrive left them: the first sending's deduplication id.
		if _, err := api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(dlq), MessageBody: aws.String(body),
			MessageGroupId: aws.String(group), MessageDeduplicationId: aws.String(group + "#queued")}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(want)

	n, err := Redrive(ctx, api, RedriveOptions{DLQ: dlq, Queue: jobs, DryRun: true})
	if err != nil || n != 5 {
		t.Fatalf("dry run: %d, %v; want 5 seen", n, err)
	}
	interrupted := &failingDelete{Client: api, ok: 1}
	n, err = Redrive(ctx, interrupted, RedriveOptions{DLQ: dlq, Queue: jobs, Max: 3})
	if err == nil || n != 1 {
		t.Fatalf("interrupted redrive: %d, %v; want 1 moved and the delete's error", n, err)
	}
	// The message whose delete failed was sent back, and is visible again in the DLQ: the
	// second run sends it again with the same deduplication id, which SQS drops.
	n, err = Redrive(ctx, api, RedriveOptions{DLQ: dlq, Queue: jobs})
	if err != nil || n != 4 {
		t.Fatalf("second run: %d, %v; want the 4 left", n, err)
	}
	if got := drain(t, api, dlq); len(got) != 0 {
		t.Errorf("DLQ still holds %v", got)
	}
	if diff := cmp.Diff(want, drain(t, api, jobs)); diff != "" {
		t.Errorf("queue after the redrives (-want +got):\n%s", diff)
	}
}
