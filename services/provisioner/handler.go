package main

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/queue"
)

// Visibility is the SQS call the backoff uses.
type Visibility interface {
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// Backoff bounds the retry delays: jittered exponential for transient failures, a fixed pause
// for operator-fixable ones (so they reach the DLQ after maxReceiveCount in minutes, not hours).
type Backoff struct {
	Base     time.Duration // first transient delay; default 2 s
	Max      time.Duration // transient cap; default 5 min
	Operator time.Duration // delay between tries of an operator-fixable failure; default 30 s
}

// delay is the visibility timeout before the receiveCount-th retry: Base·2^(n-1), capped,
// with full jitter over its upper half so a burst of throttled jobs does not retry in lockstep.
func (b Backoff) delay(receiveCount int) time.Duration {
	d := b.Base
	for i := 1; i < receiveCount && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d/2 + rand.N(d/2+1)
}

// Handle processes one SQS batch. A failed message fails itself and every later message of its
// group in the batch (FIFO order within a job must hold); other groups go on. Malformed messages
// are recorded and acknowledged. When less than RecordBudget is left before the function's
// deadline, no further record is started: the rest are reported failed and come again, so a
// timeout never makes SQS redeliver records already done.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	failed := map[string]bool{}
	deadline, bounded := ctx.Deadline()
	for i, rec := range ev.Records {
		if bounded && time.Until(deadline) < h.cfg.RecordBudget {
			logging.From(ctx).Warn().Int("left", len(ev.Records)-i).Dur("timeLeft", time.Until(deadline)).Msg("batch deadline near: the rest of the batch comes again")
			for _, r := range ev.Records[i:] {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
				// Visible again at once, not after the queue's visibility timeout.
				if err := h.retryIn(ctx, r.ReceiptHandle, 0); err != nil {
					logging.From(ctx).Warn().Err(err).Str("messageId", r.MessageId).Msg("release skipped record")
				}
			}
			break
		}
		group := rec.Attributes["MessageGroupId"]
		if failed[group] {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
			continue
		}
		if err := h.record(ctx, rec); err != nil {
			failed[group] = true
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	return resp, nil
}

// record processes one message and logs its outcome once.
func (h *Handler) record(ctx context.Context, rec events.SQSMessage) error {
	receives, _ := strconv.Atoi(rec.Attributes["ApproximateReceiveCount"])
	m, err := queue.Decode([]byte(rec.Body))
	if err != nil {
		return h.recordMalformed(ctx, rec, err)
	}
	ctx = logging.WithDelivery(logging.WithJob(ctx, m.Host, m.JobID), m.DeliveryID)
	log := logging.From(ctx)
	if wait := m.NotBefore.Sub(h.now()); wait > time.Second {
		// A retry that came round early (FIFO queues have no per-message delay): hide it for the
		// rest of its wait. It is alone in its group, so it holds nothing up.
		if err := h.retryIn(ctx, rec.ReceiptHandle, wait); err != nil {
			log.Warn().Err(err).Msg("postpone retry")
		}
		return errNotYet
	}

	outcome, err := h.process(ctx, m, receives)
	if err == nil {
		log.Info().Str("action", m.Action).Str("outcome", outcome).Int("receives", receives).Msg("job event")
		return nil
	}
	c := classify(err)
	ev := log.Warn()
	if c == operator {
		ev = log.Error()
	}
	ev = ev.Err(err).Str("action", m.Action).Int("receives", receives)
	d, name := h.backoff.Operator, "operator"
	if c == transient {
		d, name = h.backoff.delay(receives), "transient"
	}
	ev = ev.Str("class", name).Dur("retryIn", d)
	if verr := h.retryIn(ctx, rec.ReceiptHandle, d); verr != nil {
		ev = ev.AnErr("visibilityError", verr)
	}
	ev.Msg("job event failed")
	return err
}

func (h *Handler) retryIn(ctx context.Context, receipt string, d time.Duration) error {
	_, err := h.visibility.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(h.queueURL),
		ReceiptHandle:     aws.String(receipt),
		VisibilityTimeout: int32(d / time.Second),
	})
	return err
}

// recordMalformed keeps what can be kept of a message that cannot be processed: a rejected job
// when the body names one, a log line always. The message is acknowledged (retrying the message
// would never help) unless recording the rejection failed.
func (h *Handler) recordMalformed(ctx context.Context, rec events.SQSMessage, cause error) error {
	log := logging.From(ctx)
	var partial struct {
		Host  string `json:"host"`
		JobID int64  `json:"jobId"`
	}
	if json.Unmarshal([]byte(rec.Body), &partial) == nil && partial.Host != "" && partial.JobID > 0 {
		if _, err := h.rejectNew(ctx, partial.Host, partial.JobID, "malformed message: "+cause.Error()); err != nil {
			log.Error().Err(err).Msg("record malformed message")
			return err
		}
	}
	log.Error().Err(cause).Str("messageId", rec.MessageId).Msg("malformed message acknowledged")
	return nil
}

// errNotYet fails a retry that arrived before its time; it is not logged as a failure.
var errNotYet = errors.New("retry not due yet")
