package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// JobState is where a job is: queued → provisioning → launched → running → completed, with the
// side exits rejected (user error), failed (gave up) and cancelled.
type JobState string

// Job states.
const (
	Queued       JobState = "queued"
	Provisioning JobState = "provisioning"
	Launched     JobState = "launched"
	Running      JobState = "running"
	Completed    JobState = "completed"
	Rejected     JobState = "rejected"
	Failed       JobState = "failed"
	Cancelled    JobState = "cancelled"
)

// Pending reports whether a job in state s still waits for a runner.
func (s JobState) Pending() bool { return s == Queued || s == Provisioning || s == Launched }

// Final reports whether s is an end state.
func (s JobState) Final() bool {
	return s == Completed || s == Rejected || s == Failed || s == Cancelled
}

// Job is a workflow job as Spot Runner tracks it.
type Job struct {
	Host           string               `dynamodbav:"host"`
	ID             int64                `dynamodbav:"jobId"`
	State          JobState             `dynamodbav:"state"`
	Owner          string               `dynamodbav:"owner"`
	OwnerType      string               `dynamodbav:"ownerType"`
	Repo           string               `dynamodbav:"repo"`
	InstallationID int64                `dynamodbav:"installationId"`
	RunID          int64                `dynamodbav:"runId"`
	RunAttempt     int64                `dynamodbav:"runAttempt"`
	Name           string               `dynamodbav:"name,omitempty"`
	Labels         []string             `dynamodbav:"labels"`
	LabelSet       []string             `dynamodbav:"labelSet"`
	Preset         string               `dynamodbav:"preset,omitempty"`
	InstanceID     string               `dynamodbav:"instanceId,omitempty"`
	RunnerName     string               `dynamodbav:"runnerName,omitempty"`
	Attempt        int                  `dynamodbav:"attempt"`              // launch attempt: a relaunch after a stolen runner is attempt+1
	SlotHeld       bool                 `dynamodbav:"slotHeld,omitempty"`   // a runner slot taken for this launch (see AcquireSlot)
	LaunchTry      int                  `dynamodbav:"launchTry"`            // CreateFleet tries of this attempt that surely launched nothing
	Launch         *LaunchSpec          `dynamodbav:"launch,omitempty"`     // the inputs of this try's CreateFleet, fixed at its first call
	LeaseUntil     int64                `dynamodbav:"leaseUntil,omitempty"` // unix ms; numbers compare right, RFC 3339 strings may not
	Reason         string               `dynamodbav:"reason,omitempty"`
	Timeline       map[string]time.Time `dynamodbav:"timeline"`
	ReceivedAt     time.Time            `dynamodbav:"receivedAt"`
}

// LaunchSpec is what a launch asks EC2 for. It is fixed on the job when the try takes its slot,
// so that a retry with the same ClientToken sends the same request even when the preset or its
// AMI changed meanwhile (EC2 refuses a reused token with other parameters), and cleared when the
// job moves to a new try or attempt.
type LaunchSpec struct {
	ImageID          string   `dynamodbav:"imageId"`
	LaunchTemplateID string   `dynamodbav:"launchTemplateId"`
	InstanceTypes    []string `dynamodbav:"instanceTypes,omitempty"`
	SubnetIDs        []string `dynamodbav:"subnetIds"`
	Strategy         string   `dynamodbav:"strategy"`
	DiskSizeGB       int      `dynamodbav:"diskSizeGb,omitempty"`
	MinVCPU          int      `dynamodbav:"minVcpu,omitempty"`
	MinMemoryGiB     int      `dynamodbav:"minMemoryGib,omitempty"`
	Architecture     string   `dynamodbav:"architecture,omitempty"`
	TimeoutMinutes   int      `dynamodbav:"timeoutMinutes,omitempty"`
	IdleMinutes      int      `dynamodbav:"idleMinutes,omitempty"`
}

// jobItem is a Job with its keys, as stored.
type jobItem struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	Pool      string `dynamodbav:"pool,omitempty"`
	Phase     string `dynamodbav:"phase,omitempty"`
	ExpiresAt int64  `dynamodbav:"expiresAt,omitempty"`
	// Day and ReceivedMs key RecentIndex; set when the job is created, never changed.
	Day        string `dynamodbav:"day,omitempty"`
	ReceivedMs int64  `dynamodbav:"receivedMs,omitempty"`
	Job
}

// CreateJob stores j (its State and Timeline set here) unless the job exists. It returns the
// stored job and whether this call created it.
func (s *Store) CreateJob(ctx context.Context, j Job, st JobState) (Job, bool, error) {
	now := s.now().UTC()
	j.State = st
	j.Timeline = map[string]time.Time{string(st): now}
	received := j.ReceivedAt.UTC()
	if received.IsZero() {
		received = now
	}
	it := jobItem{PK: jobKey(j.Host, j.ID), SK: "JOB", Day: received.Format(dayFormat), ReceivedMs: received.UnixMilli(), Job: j}
	if st.Pending() {
		it.Pool = PoolKey(j.Host, j.LabelSet)
	}
	it.Phase = jobPhase(st)
	if st.Final() {
		it.ExpiresAt = now.Add(Retention).Unix()
	}
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return Job{}, false, fmt.Errorf("encode job %d: %w", j.ID, err)
	}
	err = retryConflicts(ctx, func() error {
		_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:           aws.String(s.table),
			Item:                av,
			ConditionExpression: aws.String("attribute_not_exists(pk)"),
		})
		return err
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		cur, err := s.Job(ctx, j.Host, j.ID)
		return cur, false, err
	}
	if err != nil {
		return Job{}, false, fmt.Errorf("create job %d: %w", j.ID, err)
	}
	return j, true, nil
}

// Job reads a job (strongly consistent).
func (s *Store) Job(ctx context.Context, host string, id int64) (Job, error) {
	var it jobItem
	err := s.get(ctx, jobKey(host, id), "JOB", fmt.Sprintf("job %s/%d", host, id), &it)
	return it.Job, err
}

// Change is what a transition writes besides the state. Zero fields are left alone.
type Change struct {
	InstanceID     string
	ClearInstance  bool // remove the instance (a relaunch, a discarded launch, a job run elsewhere)
	RunnerName     string
	Reason         string
	Preset         string
	NextAttempt    bool          // attempt + 1
	NextLaunchTry  bool          // launchTry + 1: the last CreateFleet surely launched nothing
	Lease          time.Duration // provisioning lease from now; a crashed worker's job is resumable after it
	ExpireLease    bool          // end the lease now: the next attempt may claim at once
	ExpectInstance *string       // only if the job's instance is this one ("" = none)
}

// Transition moves job (host, id) from one of from to `to`, writing c, and returns the new job.
// When the job is in none of from, it returns the current job and ErrConflict.
func (s *Store) Transition(ctx context.Context, host string, id int64, from []JobState, to JobState, c Change) (Job, error) {
	return s.transition(ctx, host, id, from, to, c, false)
}

// Claim takes a job for provisioning: queued → provisioning, or provisioning whose lease ran out
// (a worker crashed or timed out mid-way). The lease is held for lease.
func (s *Store) Claim(ctx context.Context, host string, id int64, lease time.Duration) (Job, error) {
	return s.transition(ctx, host, id, []JobState{Queued}, Provisioning, Change{Lease: lease}, true)
}

func (s *Store) transition(ctx context.Context, host string, id int64, from []JobState, to JobState, c Change, orExpiredLease bool) (Job, error) {
	now := s.now().UTC()
	u := newUpdate()
	u.set(str(string(to)), "state")
	u.set(str(now.Format(time.RFC3339Nano)), "timeline", string(to))
	if c.InstanceID != "" {
		u.set(str(c.InstanceID), "instanceId")
	}
	if c.ClearInstance {
		u.remove("instanceId") // its slot, if any, moved to its runner item with RecordLaunch
	}
	if c.RunnerName != "" {
		u.set(str(c.RunnerName), "runnerName")
	}
	if c.Reason != "" {
		u.set(str(c.Reason), "reason")
	}
	if c.Preset != "" {
		u.set(str(c.Preset), "preset")
	}
	if c.NextAttempt {
		u.add(num(1), "attempt")
	}
	if c.NextLaunchTry {
		u.add(num(1), "launchTry")
	}
	if c.NextAttempt || c.NextLaunchTry {
		u.remove("launch") // a new try builds its request afresh
	}
	switch {
	case c.ExpireLease:
		u.set(num(0), "leaseUntil")
	case c.Lease > 0:
		u.set(num(now.Add(c.Lease).UnixMilli()), "leaseUntil")
	case to != Provisioning:
		u.remove("leaseUntil")
	}
	if !to.Pending() {
		u.remove("pool")
	}
	if p := jobPhase(to); p != "" {
		u.set(str(p), "phase")
	} else {
		u.remove("phase")
	}
	if to.Final() {
		u.set(num(now.Add(Retention).Unix()), "expiresAt")
	}

	states := make([]string, len(from))
	for i, f := range from {
		states[i] = string(f)
	}
	cond := u.in("state", states...)
	if orExpiredLease {
		cond = "(" + cond + " OR (" + u.name("state") + " = " + u.value(str(string(Provisioning))) +
			" AND " + u.name("leaseUntil") + " < " + u.value(num(now.UnixMilli())) + "))"
	}
	cond = "attribute_exists(pk) AND " + cond
	if c.ExpectInstance != nil {
		if *c.ExpectInstance == "" {
			cond += " AND attribute_not_exists(" + u.name("instanceId") + ")"
		} else {
			cond += " AND " + u.name("instanceId") + " = " + u.value(str(*c.ExpectInstance))
		}
	}

	var out *dynamodb.UpdateItemOutput
	err := retryConflicts(ctx, func() (err error) {
		out, err = s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(s.table),
			Key:                       key(jobKey(host, id), "JOB"),
			UpdateExpression:          aws.String(u.expression()),
			ConditionExpression:       aws.String(cond),
			ExpressionAttributeNames:  u.names,
			ExpressionAttributeValues: u.values,
			ReturnValues:              types.ReturnValueAllNew,
		})
		return err
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		cur, gerr := s.Job(ctx, host, id)
		if gerr != nil {
			return Job{}, gerr
		}
		return cur, fmt.Errorf("job %s/%d is %s, not %v: %w", host, id, cur.State, from, ErrConflict)
	}
	if err != nil {
		return Job{}, fmt.Errorf("move job %d to %s: %w", id, to, err)
	}
	var it jobItem
	if err := attributevalue.UnmarshalMap(out.Attributes, &it); err != nil {
		return Job{}, fmt.Errorf("decode job %d: %w", id, err)
	}
	return it.Job, nil
}
