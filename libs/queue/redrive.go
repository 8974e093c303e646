package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// RedriveAPI is the part of the SQS client Redrive uses.
type RedriveAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// RedriveOptions configure Redrive.
type RedriveOptions struct {
	// DLQ and Queue are required: the dead-letter queue's URL and the queue's its messages go
	// back to (both FIFO).
	DLQ, Queue string
	// Max is optional: at most this many messages; 0 = until the DLQ answers empty.
	Max int
	// DryRun is optional: receive and report, send and delete nothing; the messages seen are
	// made visible again at the end.
	DryRun bool
	// Moved is optional: told of each message sent back (or, with DryRun, that would be).
	Moved func(m types.Message)
}

// Redrive moves messages from a FIFO dead-letter queue back to its queue, the way SQS's
// StartMessageMoveTask does where it serves (moto lacks it): each message is sent again with its
// body, attributes and MessageGroupId, and a new MessageDeduplicationId derived from its message
// id, so that SQS does not drop it as a duplicate of its first sending within the five-minute
// window; it is deleted from the DLQ only after the send succeeded. Interrupted and run again,
// nothing is lost (a message not yet deleted is sent again) and nothing is doubled (the same
// message gets the same deduplication id, which SQS drops within five minutes, and the job's
// own state makes a later duplicate a no-op). It returns how many messages it moved.
func Redrive(ctx context.Context, api RedriveAPI, o RedriveOptions) (moved int, err error) {
	if o.DLQ == "" || o.Queue == "" {
		return 0, errors.New("redrive: the DLQ and the queue are required")
	}
	// Messages received and not deleted (a dry run's, or one whose send or delete failed) stay
	// hidden while this run goes on, so each receive brings new ones, and are made visible again
	// at the end for the next run.
	var held []*string
	defer func() {
		for _, h := range held {
			_, _ = api.ChangeMessageVisibility(context.WithoutCancel(ctx), &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(o.DLQ), ReceiptHandle: h, VisibilityTimeout: 0})
		}
	}()
	for o.Max == 0 || moved < o.Max {
		n := int32(10)
		if o.Max > 0 && o.Max-moved < 10 {
			n = int32(o.Max - moved)
		}
		out, err := api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(o.DLQ), MaxNumberOfMessages: n, VisibilityTimeout: 30, WaitTimeSeconds: 0,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"},
		})
		if err != nil {
			return moved, fmt.Errorf("redrive: receive from the DLQ: %w", err)
		}
		if len(out.Messages) == 0 {
			return moved, nil
		}
		for i, m := range out.Messages {
			rest := func() {
				for _, r := range out.Messages[i:] {
					held = append(held, r.ReceiptHandle)
				}
			}
			if o.DryRun {
				held = append(held, m.ReceiptHandle)
				moved++
				if o.Moved != nil {
					o.Moved(m)
				}
				continue
			}
			group := m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
			if group == "" {
				rest()
				return moved, fmt.Errorf("redrive: message %s has no MessageGroupId: not a FIFO queue's", aws.ToString(m.MessageId))
			}
			if _, err := api.SendMessage(ctx, &sqs.SendMessageInput{
				QueueUrl: aws.String(o.Queue), MessageBody: m.Body, MessageGroupId: aws.String(group),
				MessageDeduplicationId: aws.String(redriveDedupID(aws.ToString(m.MessageId))),
				MessageAttributes:      m.MessageAttributes,
			}); err != nil {
				rest()
				return moved, fmt.Errorf("redrive: send message %s back: %w", aws.ToString(m.MessageId), err)
			}
			if _, err := api.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(o.DLQ), ReceiptHandle: m.ReceiptHandle}); err != nil {
				rest()
				return moved, fmt.Errorf("redrive: message %s was sent back but not deleted from the DLQ (a second run sends it with the same deduplication id): %w", aws.ToString(m.MessageId), err)
			}
			moved++
			if o.Moved != nil {
				o.Moved(m)
			}
		}
	}
	return moved, nil
}

// redriveDedupID is a message's deduplication id when redriven: the same for every redrive of
// the same DLQ message, never its first sending's.
func redriveDedupID(messageID string) string {
	sum := sha256.Sum256([]byte("redrive:" + messageID))
	return "redrive-" + hex.EncodeToString(sum[:16])
}
