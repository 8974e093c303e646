package queue

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// SendAPI is the part of the SQS client the publisher uses.
type SendAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Publisher puts messages on the FIFO job queue.
type Publisher struct {
	api SendAPI
	url string
}

// NewPublisher returns a publisher for the queue at url.
func NewPublisher(api SendAPI, url string) *Publisher { return &Publisher{api: api, url: url} }

// Publish sends m with its group and deduplication ids.
func (p *Publisher) Publish(ctx context.Context, m Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode message for job %d: %w", m.JobID, err)
	}
	_, err = p.api.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:               aws.String(p.url),
		MessageBody:            aws.String(string(body)),
		MessageGroupId:         aws.String(m.GroupID()),
		MessageDeduplicationId: aws.String(m.DedupID()),
	})
	if err != nil {
		return fmt.Errorf("send %s message for job %d: %w", m.Action, m.JobID, err)
	}
	return nil
}
