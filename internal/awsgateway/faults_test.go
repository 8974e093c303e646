package awsgateway

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// TestWorldSQSThrottling (local world): fixtures are a FIFO queue created in moto through the
// gateway and one injected SendMessage fault per case: AWS's generic ThrottlingException, and
// SQS's own RequestThrottled. A single-attempt SendMessage must fail with the code and message
// given, HTTP 400, decoded by the real SDK client as that service's error (RequestThrottled as
// SQS's modelled *types.RequestThrottled) and classified as throttling by the SDK's retryer;
// the next SendMessage must reach moto; the queue must then hold exactly that one message.
func TestWorldSQSThrottling(t *testing.T) {
	t.Parallel()
	world.Endpoint(t) // before the cases: the whole test fails (or skips) without the world
	tests := []struct {
		name, code, message string
		modelled            bool // the SDK decodes it into *types.RequestThrottled
	}{
		{name: "ThrottlingException", code: "ThrottlingException", message: "Rate exceeded"},
		{name: "SQS RequestThrottled", code: "RequestThrottled", message: "Request is throttled.", modelled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g, cfg := startWorld(t, Options{})
			client := sqs.NewFromConfig(cfg)
			queue := world.FIFOQueue(t, cfg)
			send := func(body string, optFns ...func(*sqs.Options)) error {
				_, err := client.SendMessage(ctx, &sqs.SendMessageInput{
					QueueUrl: aws.String(queue), MessageBody: aws.String(body), MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String(body),
				}, optFns...)
				return err
			}

			g.FailCall("sqs", "SendMessage", 1, 400, tt.code, tt.message)
			err := send("throttled", func(o *sqs.Options) { o.RetryMaxAttempts = 1 })
			checkAPIError(t, err, 400, tt.code, tt.message)
			if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) != aws.TrueTernary {
				t.Errorf("the SDK's retryer does not see %v as throttling", err)
			}
			var modelled *sqstypes.RequestThrottled
			if got := errors.As(err, &modelled); got != tt.modelled {
				t.Errorf("decoded as *types.RequestThrottled: %v, want %v (%T)", got, tt.modelled, errors.Unwrap(err))
			}
			if err := send("through"); err != nil {
				t.Fatalf("SendMessage after the fault: %v", err)
			}

			out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10})
			if err != nil {
				t.Fatal(err)
			}
			var bodies []string
			for _, m := range out.Messages {
				bodies = append(bodies, aws.ToString(m.Body))
			}
			if diff := cmp.Diff([]string{"through"}, bodies); diff != "" {
				t.Errorf("messages in the queue (-want +got):\n%s", diff)
			}
		})
	}
}
