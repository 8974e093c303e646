// Package relaunch puts a job that lost its runner back in line as a new launch attempt: the job
// goes back to queued (attempt + 1, no instance) with a conditional write, then a queued message for
// that attempt goes on the job queue. The provisioner's per-label-set correction and the reaper's
// stuck-launch step share this one path.
package relaunch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// Reason is the provisioner's relaunch reason. Every relaunch reason starts with "relaunched", which
// marks a job put back to queued by a relaunch until its new attempt is claimed: a count that finds
// such a job (Marked) re-sends its message (a crash between the two steps).
const Reason = "relaunched: its runner ran another job"

// Marked reports a job a relaunch put back to queued whose new attempt is not claimed yet.
func Marked(j state.Job) bool {
	return j.State == state.Queued && j.InstanceID == "" && strings.HasPrefix(j.Reason, "relaunched")
}

// Store is the state the relaunch writes (state.Store).
type Store interface {
	Transition(ctx context.Context, host string, id int64, from []state.JobState, to state.JobState, c state.Change) (state.Job, error)
}

// Publisher puts the relaunch on the job queue (queue.Publisher).
type Publisher interface {
	Publish(ctx context.Context, m queue.Message) error
}

// Job moves launched job j, still bound to instance j.InstanceID, back to queued as attempt
// j.Attempt+1 with reason (which must start with "relaunched", see Marked), and queues its launch. A job that started, ended or was rebound
// meanwhile is left alone (nil): it no longer needs this relaunch.
func Job(ctx context.Context, store Store, pub Publisher, j state.Job, reason string) error {
	if !strings.HasPrefix(reason, "relaunched") {
		reason = "relaunched: " + reason
	}
	old := j.InstanceID
	j, err := store.Transition(ctx, j.Host, j.ID, []state.JobState{state.Launched}, state.Queued,
		state.Change{ClearInstance: true, NextAttempt: true, ExpectInstance: &old, Reason: reason})
	if errors.Is(err, state.ErrConflict) {
		return nil
	}
	if err != nil {
		return err
	}
	return Publish(ctx, pub, j)
}

// Publish queues the launch of attempt j.Attempt; its deduplication id carries the attempt, and a
// duplicate that gets through finds the job claimed.
func Publish(ctx context.Context, pub Publisher, j state.Job) error {
	m := queue.Message{
		Version: queue.Version, Action: queue.ActionQueued, DeliveryID: "relaunch-" + strconv.Itoa(j.Attempt),
		Host: j.Host, InstallationID: j.InstallationID, Owner: j.Owner, OwnerType: j.OwnerType, Repo: j.Repo,
		JobID: j.ID, JobName: j.Name, RunID: j.RunID, RunAttempt: j.RunAttempt, Labels: j.Labels,
		ReceivedAt: j.ReceivedAt, Attempt: j.Attempt,
	}
	if err := pub.Publish(ctx, m); err != nil {
		return fmt.Errorf("relaunch job %d: %w", j.ID, err)
	}
	return nil
}
