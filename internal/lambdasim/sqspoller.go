package lambdasim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQSAPI is the part of the SQS client an SQSPoller uses.
type SQSAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// SQSPollerOptions configure an SQSPoller.
type SQSPollerOptions struct {
	// QueueURL and QueueARN are required: the queue polled, and its ARN for eventSourceARN (its
	// region becomes awsRegion).
	QueueURL, QueueARN string
	// Function is required: what each batch is given to.
	Function Invoker
	// BatchSize is optional, default 10: ReceiveMessage's MaxNumberOfMessages (the template's
	// BatchSize; SQS gives at most 10 per receive).
	BatchSize int
	// ReportBatchItemFailures is the template's FunctionResponseTypes: the function's
	// batchItemFailures say which records to keep.
	ReportBatchItemFailures bool
	// Pollers is optional, default 1: how many receive-and-invoke loops run at once (Lambda scales
	// its pollers, for a FIFO queue with the number of active message groups). SQS FIFO itself
	// keeps one group's messages out of two batches in flight.
	Pollers int
	// MaxIdlePause is optional, default 250 ms: the longest pause between two empty receives.
	MaxIdlePause time.Duration
	// OnError is optional: told of each batch that failed (a function error or an invocation
	// that did not complete) and of each receive or delete that failed.
	OnError func(error)
}

// SQSPoller is Lambda's SQS event source mapping on loopback: it receives batches from a queue,
// invokes the function with each as an SQS event shaped as Lambda's, and deletes what the
// function processed:
//
//   - a function that returns normally processed the whole batch, unless ReportBatchItemFailures
//     is on and its batchItemFailures name records: those stay on the queue;
//   - a function error, an invocation that did not complete, or a response Lambda would call
//     invalid (unparseable, an empty or unknown itemIdentifier) leaves every record of the batch
//     on the queue, to come back when its visibility timeout ends (and move to the dead-letter
//     queue after maxReceiveCount receives, which moto does).
//
// It receives with short polls and pauses after an empty one (20 ms, doubling up to
// MaxIdlePause) instead of long polling: moto's long poll spins a CPU core for the whole wait
// while a FIFO message group is in flight and has more visible messages (measured with moto
// 5.2.1: a full core for a 5 s wait).
type SQSPoller struct {
	api    SQSAPI
	o      SQSPollerOptions
	region string

	batches, records, deleted, kept, failedBatches atomic.Int64
}

// PollerStats count what an SQSPoller did.
type PollerStats struct {
	// Batches is how many batches were given to the function; Records how many records in all.
	Batches, Records int64
	// Deleted is how many records were deleted as processed; Kept how many were left on the
	// queue (reported failed, or in a failed batch).
	Deleted, Kept int64
	// FailedBatches is how many batches failed as a whole.
	FailedBatches int64
}

// NewSQSPoller returns a poller; Run starts it.
func NewSQSPoller(api SQSAPI, o SQSPollerOptions) (*SQSPoller, error) {
	parts := strings.SplitN(o.QueueARN, ":", 6)
	switch {
	case o.QueueURL == "":
		return nil, errors.New("sqs poller: no queue URL")
	case len(parts) != 6 || parts[2] != "sqs":
		return nil, fmt.Errorf("sqs poller: queue ARN %q is not an SQS ARN", o.QueueARN)
	case o.Function == nil:
		return nil, errors.New("sqs poller: no function")
	}
	if o.BatchSize <= 0 {
		o.BatchSize = sqsDefaultBatch
	}
	if o.Pollers <= 0 {
		o.Pollers = 1
	}
	if o.MaxIdlePause <= 0 {
		o.MaxIdlePause = 250 * time.Millisecond
	}
	return &SQSPoller{api: api, o: o, region: parts[3]}, nil
}

// Stats returns what the poller did so far.
func (p *SQSPoller) Stats() PollerStats {
	return PollerStats{Batches: p.batches.Load(), Records: p.records.Load(), Deleted: p.deleted.Load(), Kept: p.kept.Load(), FailedBatches: p.failedBatches.Load()}
}

// Run polls until ctx ends, then waits for the batches in flight: each is finished (invoked and
// its processed records deleted) as Lambda finishes a batch it has started.
func (p *SQSPoller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range p.o.Pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.loop(ctx)
		}()
	}
	wg.Wait()
}

func (p *SQSPoller) loop(ctx context.Context) {
	const minPause = 20 * time.Millisecond
	pause := minPause
	for ctx.Err() == nil {
		n, err := p.pollOnce(ctx)
		if err != nil && ctx.Err() == nil {
			p.report(err)
		}
		if n > 0 {
			pause = minPause
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, p.o.MaxIdlePause)
	}
}

func (p *SQSPoller) report(err error) {
	if p.o.OnError != nil {
		p.o.OnError(err)
	}
}

// pollOnce receives one batch and, when there is one, hands it to the function and settles it.
// It returns the number of records received.
func (p *SQSPoller) pollOnce(ctx context.Context) (int, error) {
	out, err := p.api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(p.o.QueueURL),
		MaxNumberOfMessages:         int32(p.o.BatchSize),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
		WaitTimeSeconds:             0,
	})
	if err != nil {
		return 0, fmt.Errorf("receive from %s: %w", p.o.QueueURL, err)
	}
	if len(out.Messages) == 0 {
		return 0, nil
	}
	// A batch received is finished even when ctx ends meanwhile.
	return len(out.Messages), p.handle(context.WithoutCancel(ctx), out.Messages)
}

// handle invokes the function with one batch and deletes what it processed.
func (p *SQSPoller) handle(ctx context.Context, msgs []types.Message) error {
	p.batches.Add(1)
	p.records.Add(int64(len(msgs)))
	ev := p.event(msgs)
	payload, err := json.Marshal(ev)
	if err != nil {
		return p.failBatch(msgs, fmt.Errorf("encode SQS event: %w", err))
	}
	out, err := p.o.Function.Invoke(ctx, payload)
	if err != nil {
		return p.failBatch(msgs, fmt.Errorf("batch of %d from %s: %w", len(msgs), p.o.QueueURL, err))
	}
	keep := map[string]bool{}
	if p.o.ReportBatchItemFailures {
		if keep, err = failures(out, msgs); err != nil {
			return p.failBatch(msgs, fmt.Errorf("batch of %d from %s: %w", len(msgs), p.o.QueueURL, err))
		}
	}
	var done []types.Message
	for _, m := range msgs {
		if !keep[aws.ToString(m.MessageId)] {
			done = append(done, m)
		}
	}
	p.kept.Add(int64(len(msgs) - len(done)))
	return p.delete(ctx, done)
}

func (p *SQSPoller) failBatch(msgs []types.Message, err error) error {
	p.failedBatches.Add(1)
	p.kept.Add(int64(len(msgs)))
	return err
}

// failures reads the function's batchItemFailures. An empty or null response means none; a
// response Lambda cannot use is an error (the whole batch failed).
func failures(out []byte, msgs []types.Message) (map[string]bool, error) {
	keep := map[string]bool{}
	var resp struct {
		BatchItemFailures []struct {
			ItemIdentifier *string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if len(out) == 0 || string(out) == "null" {
		return keep, nil
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("invalid batch response: %w", err)
	}
	ids := map[string]bool{}
	for _, m := range msgs {
		ids[aws.ToString(m.MessageId)] = true
	}
	for _, f := range resp.BatchItemFailures {
		id := aws.ToString(f.ItemIdentifier)
		if !ids[id] {
			return nil, fmt.Errorf("invalid batch response: itemIdentifier %q is no message of the batch", id)
		}
		keep[id] = true
	}
	return keep, nil
}

// delete deletes the processed messages, ten per call.
func (p *SQSPoller) delete(ctx context.Context, msgs []types.Message) error {
	var errs []error
	for start := 0; start < len(msgs); start += 10 {
		chunk := msgs[start:min(start+10, len(msgs))]
		in := &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.o.QueueURL)}
		for i, m := range chunk {
			in.Entries = append(in.Entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		out, err := p.api.DeleteMessageBatch(ctx, in)
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %d messages from %s: %w", len(chunk), p.o.QueueURL, err))
			continue
		}
		p.deleted.Add(int64(len(out.Successful)))
		for _, f := range out.Failed {
			errs = append(errs, fmt.Errorf("delete message %s from %s: %s %s", aws.ToString(f.Id), p.o.QueueURL, aws.ToString(f.Code), aws.ToString(f.Message)))
		}
	}
	return errors.Join(errs...)
}

// event is the SQS event Lambda gives the function for msgs.
func (p *SQSPoller) event(msgs []types.Message) events.SQSEvent {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, 0, len(msgs))}
	for _, m := range msgs {
		rec := events.SQSMessage{
			MessageId:              aws.ToString(m.MessageId),
			ReceiptHandle:          aws.ToString(m.ReceiptHandle),
			Body:                   aws.ToString(m.Body),
			Md5OfBody:              aws.ToString(m.MD5OfBody),
			Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
			Attributes:             map[string]string{},
			MessageAttributes:      map[string]events.SQSMessageAttribute{},
			EventSourceARN:         p.o.QueueARN,
			EventSource:            "aws:sqs",
			AWSRegion:              p.region,
		}
		for k, v := range m.Attributes {
			rec.Attributes[k] = v
		}
		for k, v := range m.MessageAttributes {
			rec.MessageAttributes[k] = events.SQSMessageAttribute{
				StringValue: v.StringValue, BinaryValue: v.BinaryValue, DataType: aws.ToString(v.DataType),
				StringListValues: orEmpty(v.StringListValues), BinaryListValues: orEmptyBytes(v.BinaryListValues),
			}
		}
		ev.Records = append(ev.Records, rec)
	}
	return ev
}

// Lambda sends empty lists, not nulls, for an attribute's list values.
func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func orEmptyBytes(s [][]byte) [][]byte {
	if s == nil {
		return [][]byte{}
	}
	return s
}
