package queue

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"
)

// fakeSQS records every SendMessage input and answers with err, or with a message id.
type fakeSQS struct {
	mu   sync.Mutex
	err  error
	sent []*sqs.SendMessageInput
}

func (f *fakeSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, in)
	if f.err != nil {
		return nil, f.err
	}
	return &sqs.SendMessageOutput{MessageId: aws.String("m-1")}, nil
}

// sent is what a SendMessage input carried, with the body decoded.
type sent struct {
	QueueURL, GroupID, DedupID string
	Msg                        Message
}

const testQueueURL = "https://sqs.us-east-1.amazonaws.com/123456789012/spotrunner-jobs.fifo"

var errSQS = errors.New("operation error SQS: SendMessage, api error ServiceUnavailable")

// TestPublish: fixtures are messages and a fake SQS that records each SendMessage. A publish must be
// one SendMessage to the queue URL with the job id as group, the message's dedup id, and a body that
// Decode turns back into the same message; an SQS failure must come back wrapped (errors.Is) with the
// action and the job id.
func TestPublish(t *testing.T) {
	t.Parallel()
	longHost := hostOf(200)
	tests := []struct {
		name    string
		msg     Message
		sqsErr  error
		want    sent
		wantErr string // the whole error; "" for success
	}{
		{
			name: "queued",
			msg:  queued(),
			want: sent{QueueURL: testQueueURL, GroupID: "901", DedupID: "ghes.example.com/901/queued", Msg: queued()},
		},
		{
			name: "completed",
			msg:  completed(),
			want: sent{QueueURL: testQueueURL, GroupID: "901", DedupID: "ghes.example.com/901/completed", Msg: completed()},
		},
		{
			name: "relaunch",
			msg:  change(func(m *Message) { m.Attempt = 2 }),
			want: sent{
				QueueURL: testQueueURL, GroupID: "901", DedupID: "ghes.example.com/901/queued/2",
				Msg: change(func(m *Message) { m.Attempt = 2 }),
			},
		},
		{
			name: "long host",
			msg:  change(func(m *Message) { m.Host = longHost }),
			want: sent{
				QueueURL: testQueueURL, GroupID: "901", DedupID: sha256Hex(longHost + "/901/queued"),
				Msg: change(func(m *Message) { m.Host = longHost }),
			},
		},
		{
			name:    "SQS fails",
			msg:     change(func(m *Message) { m.Action = ActionInProgress }),
			sqsErr:  errSQS,
			want:    sent{QueueURL: testQueueURL, GroupID: "901", DedupID: "ghes.example.com/901/in_progress", Msg: change(func(m *Message) { m.Action = ActionInProgress })},
			wantErr: "send in_progress message for job 901: " + errSQS.Error(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSQS{err: tt.sqsErr}
			err := NewPublisher(f, testQueueURL).Publish(context.Background(), tt.msg)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, tt.sqsErr) {
					t.Errorf("Publish error = %v, want %q wrapping %v", err, tt.wantErr, tt.sqsErr)
				}
			}
			var got []sent
			for _, in := range f.sent {
				m, err := Decode([]byte(aws.ToString(in.MessageBody)))
				if err != nil {
					t.Errorf("body does not decode: %v", err)
				}
				got = append(got, sent{
					QueueURL: aws.ToString(in.QueueUrl), GroupID: aws.ToString(in.MessageGroupId),
					DedupID: aws.ToString(in.MessageDeduplicationId), Msg: m,
				})
			}
			if diff := cmp.Diff([]sent{tt.want}, got); diff != "" {
				t.Errorf("SendMessage calls (-want +got):\n%s", diff)
			}
		})
	}
}
