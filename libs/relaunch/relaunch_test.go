package relaunch

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// fakeStore moves the job it holds as a conditional write would: from launched on the expected
// instance only.
type fakeStore struct{ job state.Job }

func (f *fakeStore) Transition(_ context.Context, _ string, _ int64, from []state.JobState, to state.JobState, c state.Change) (state.Job, error) {
	if f.job.State != from[0] || c.ExpectInstance != nil && *c.ExpectInstance != f.job.InstanceID {
		return f.job, state.ErrConflict
	}
	f.job.State, f.job.Reason, f.job.InstanceID = to, c.Reason, ""
	f.job.Attempt++
	return f.job, nil
}

type fakePub struct{ sent []queue.Message }

func (p *fakePub) Publish(_ context.Context, m queue.Message) error {
	p.sent = append(p.sent, m)
	return nil
}

// TestJob: a launched job on its instance is put back as the next attempt with a reason Marked
// recognises (prefixed when the caller's is not), and one message for that attempt is queued; a
// job rebound meanwhile is left alone and nothing is queued.
func TestJob(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		job        state.Job
		reason     string
		wantReason string
		wantSent   []string // delivery ids
	}{
		{"provisioner's reason", state.Job{Host: "h", ID: 1, State: state.Launched, InstanceID: "i-1"}, Reason, Reason, []string{"relaunch-1"}},
		{"reaper's reason", state.Job{Host: "h", ID: 1, State: state.Launched, InstanceID: "i-1", Attempt: 2}, "relaunched by the reaper: stuck", "relaunched by the reaper: stuck", []string{"relaunch-3"}},
		{"reason without the mark", state.Job{Host: "h", ID: 1, State: state.Launched, InstanceID: "i-1"}, "runner gone", "relaunched: runner gone", []string{"relaunch-1"}},
		{"started meanwhile", state.Job{Host: "h", ID: 1, State: state.Running, InstanceID: "i-1"}, Reason, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, pub := &fakeStore{job: tt.job}, &fakePub{}
			if err := Job(context.Background(), st, pub, tt.job, tt.reason); err != nil {
				t.Fatal(err)
			}
			var sent []string
			for _, m := range pub.sent {
				sent = append(sent, m.DeliveryID)
			}
			if diff := cmp.Diff(tt.wantSent, sent); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
			if tt.wantReason != "" && (st.job.Reason != tt.wantReason || !Marked(st.job)) {
				t.Errorf("job %+v: reason %q, Marked %v; want %q and marked", st.job, st.job.Reason, Marked(st.job), tt.wantReason)
			}
		})
	}
	if Marked(state.Job{State: state.Queued, Reason: "waiting: runner cap reached"}) {
		t.Error("a waiting job is not a relaunch")
	}
}
