package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/awsconfig"
	"github.com/spotrunner/spotrunner/libs/queue"
)

// TestDeliveryToFIFOQueue (local world): a signed queued delivery goes through the real handler
// and publisher onto a real FIFO queue in moto, with the job id as group and host/job/action as
// deduplication id; the same delivery sent twice (GitHub redelivery) yields one message, and the
// job's in_progress event is a second, distinct message of the same group.
func TestDeliveryToFIFOQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := awsconfig.Load(ctx, awsconfig.Options{EndpointURL: world.Endpoint(t)})
	if err != nil {
		t.Fatal(err)
	}
	client := sqs.NewFromConfig(cfg)
	name := "ingest-test-" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "") + ".fifo"
	created, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(name),
		Attributes: map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "false"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(queue.NewPublisher(client, *created.QueueUrl), Filter{})

	for _, d := range []struct {
		id   string
		body []byte
	}{
		{"guid-1", spotrunnerJob("queued")},
		{"guid-1-redelivery", spotrunnerJob("queued")},
		{"guid-2", spotrunnerJob("in_progress")},
	} {
		if got := call(t, h, delivery("workflow_job", d.id, d.body, testSecret)); got.Status != "queued" {
			t.Fatalf("delivery %s: %+v", d.id, got)
		}
	}

	var got [][3]string
	for range 3 {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    created.QueueUrl,
			MaxNumberOfMessages:         10,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{"All"},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			msg, err := queue.Decode([]byte(aws.ToString(m.Body)))
			if err != nil {
				t.Fatalf("message on the queue does not decode: %v", err)
			}
			got = append(got, [3]string{m.Attributes["MessageGroupId"], m.Attributes["MessageDeduplicationId"], msg.Action})
			if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: created.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := [][3]string{
		{"901", "ghes.example.com/901/queued", "queued"},
		{"901", "ghes.example.com/901/in_progress", "in_progress"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("messages on the queue (-want +got):\n%s", diff)
	}
}
