package main

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spotrunner/spotrunner/libs/queue"
)

// recordingVisibility records ChangeMessageVisibility calls.
type recordingVisibility struct{ timeouts []int32 }

func (r *recordingVisibility) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	r.timeouts = append(r.timeouts, in.VisibilityTimeout)
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

// TestEarlyRetryIsHidden: a wait's retry that arrives 90 s before its time is failed without
// being processed and hidden for those 90 s; one that is due is not held back by this check.
func TestEarlyRetryIsHidden(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	vis := &recordingVisibility{}
	h := &Handler{visibility: vis, queueURL: "q", now: func() time.Time { return now }}
	m := queue.Message{Version: 1, Action: "queued", Host: "h", InstallationID: 1, Owner: "o", OwnerType: "User", Repo: "r",
		JobID: 9, Labels: []string{"self-hosted", "spotrunner/linux-x64"}, Retry: 3, NotBefore: now.Add(90 * time.Second)}
	rec := record("early", m, 1)
	rec.ReceiptHandle = "rh"
	resp, err := h.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{rec}})
	if err != nil || len(resp.BatchItemFailures) != 1 {
		t.Fatalf("early retry: %+v, %v; want it failed", resp, err)
	}
	if len(vis.timeouts) != 1 || vis.timeouts[0] != 90 {
		t.Errorf("visibility timeouts %v, want [90]", vis.timeouts)
	}
	if g := m.GroupID(); g != "9-retry" {
		t.Errorf("retry group %q, want 9-retry (not the job's own group)", g)
	}
}

// TestBackoffDelay: the transient delay doubles from Base, stays within [d/2, d], and never
// exceeds Max.
func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: 2 * time.Second, Max: 5 * time.Minute}
	for n, want := range map[int]time.Duration{1: 2 * time.Second, 2: 4 * time.Second, 5: 32 * time.Second, 9: 5 * time.Minute, 50: 5 * time.Minute} {
		for range 50 {
			if d := b.delay(n); d < want/2 || d > want {
				t.Fatalf("delay(%d) = %s, want within [%s, %s]", n, d, want/2, want)
			}
		}
	}
}
