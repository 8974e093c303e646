package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// RunnerState is where a runner instance is.
type RunnerState string

// Runner states: idle (launched, registered or registering, no job yet), busy (running a job),
// done (its job finished or it was terminated).
const (
	Idle RunnerState = "idle"
	Busy RunnerState = "busy"
	Done RunnerState = "done"
)

// Runner is one runner instance.
type Runner struct {
	InstanceID     string      `dynamodbav:"instanceId"`
	Host           string      `dynamodbav:"host"`
	JobID          int64       `dynamodbav:"jobId"`               // the job it was launched (or last rebound) for
	BusyJobID      int64       `dynamodbav:"busyJobId,omitempty"` // the job it actually runs
	Owner          string      `dynamodbav:"owner"`
	Repo           string      `dynamodbav:"repo,omitempty"` // set for repo-level runners
	InstallationID int64       `dynamodbav:"installationId"`
	Preset         string      `dynamodbav:"preset"`
	Labels         []string    `dynamodbav:"labels"`
	LabelSet       []string    `dynamodbav:"labelSet"`
	State          RunnerState `dynamodbav:"state"`
	RunnerName     string      `dynamodbav:"runnerName"`
	RunnerID       int64       `dynamodbav:"runnerId,omitempty"`
	CapacityType   string      `dynamodbav:"capacityType"`
	InstanceType   string      `dynamodbav:"instanceType"`
	LaunchedAt     time.Time   `dynamodbav:"launchedAt"`
	Deadline       time.Time   `dynamodbav:"deadline"`
	HoldsSlot      bool        `dynamodbav:"holdsSlot,omitempty"` // counted against the caps until released
}

type runnerItem struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	Pool      string `dynamodbav:"pool,omitempty"`
	Phase     string `dynamodbav:"phase,omitempty"`
	ExpiresAt int64  `dynamodbav:"expiresAt,omitempty"`
	Runner
}

// RecordLaunch records instance r.InstanceID as the launch of job j, in one transaction: the job
// (still provisioning, naming no other instance) names the instance and renews its lease for
// lease, the runner item is created idle in its label set's pool, and the slot the job held for
// the launch (j.SlotHeld) moves to the runner item. Recording the same launch again (a retry)
// changes nothing and returns the job. ErrConflict, with the current job, when the job moved on or
// names another instance: nobody waits for the instance then, and the caller disposes of it.
func (s *Store) RecordLaunch(ctx context.Context, j Job, r Runner, lease time.Duration) (Job, error) {
	r.State, r.HoldsSlot = Idle, j.SlotHeld
	for range 2 { // a second round when the job's slot flag was not what j said
		codes, err := s.recordLaunch(ctx, j, r, lease)
		if err != nil {
			return Job{}, err
		}
		if codes == nil {
			j.InstanceID, j.Preset, j.SlotHeld = r.InstanceID, r.Preset, false
			j.LeaseUntil = s.now().Add(lease).UnixMilli()
			return j, nil
		}
		cur, err := s.Job(ctx, j.Host, j.ID)
		if err != nil {
			return Job{}, err
		}
		switch {
		case cur.InstanceID == r.InstanceID && codes[1] == reasonCondition:
			return cur, nil
		case cur.State != Provisioning || cur.InstanceID != "" && cur.InstanceID != r.InstanceID || codes[1] == reasonCondition:
			return cur, fmt.Errorf("record instance %s on job %d (%s, instance %q): %w", r.InstanceID, j.ID, cur.State, cur.InstanceID, ErrConflict)
		}
		j.SlotHeld, r.HoldsSlot = cur.SlotHeld, cur.SlotHeld
	}
	return Job{}, fmt.Errorf("record instance %s on job %d: slot flag keeps changing: %w", r.InstanceID, j.ID, ErrContention)
}

func (s *Store) recordLaunch(ctx context.Context, j Job, r Runner, lease time.Duration) ([]string, error) {
	item, err := attributevalue.MarshalMap(runnerItem{PK: runnerKey(r.InstanceID), SK: "RUNNER", Pool: PoolKey(r.Host, r.LabelSet), Phase: runnerPhase(Idle), Runner: r})
	if err != nil {
		return nil, fmt.Errorf("encode runner %s: %w", r.InstanceID, err)
	}
	u := newUpdate()
	u.set(str(r.InstanceID), "instanceId")
	u.set(str(r.Preset), "preset")
	u.set(num(s.now().Add(lease).UnixMilli()), "leaseUntil")
	u.remove("slotHeld")
	iid := u.value(str(r.InstanceID))
	cond := "attribute_exists(pk) AND " + u.name("state") + " = " + u.value(str(string(Provisioning))) +
		" AND (attribute_not_exists(" + u.name("instanceId") + ") OR " + u.name("instanceId") + " = " + iid + ")"
	if j.SlotHeld {
		cond += " AND " + u.name("slotHeld") + " = " + u.value(&types.AttributeValueMemberBOOL{Value: true})
	} else {
		cond += " AND attribute_not_exists(" + u.name("slotHeld") + ")"
	}
	return s.transact(ctx, fmt.Sprintf("record instance %s on job %d", r.InstanceID, j.ID), []types.TransactWriteItem{
		{Update: &types.Update{
			TableName: aws.String(s.table), Key: key(jobKey(j.Host, j.ID), "JOB"),
			UpdateExpression: aws.String(u.expression()), ConditionExpression: aws.String(cond),
			ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values,
		}},
		{Put: &types.Put{TableName: aws.String(s.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
	})
}

// Runner reads a runner (strongly consistent).
func (s *Store) Runner(ctx context.Context, instanceID string) (Runner, error) {
	var it runnerItem
	err := s.get(ctx, runnerKey(instanceID), "RUNNER", "runner "+instanceID, &it)
	return it.Runner, err
}

// RunnerChange is what a runner update writes besides the state. Zero fields are left alone.
type RunnerChange struct {
	RunnerID  int64
	BusyJobID int64
	JobID     int64 // rebind to another pending job
	// ExpectJobID, when not 0, applies the update only while the runner is still bound to it.
	ExpectJobID int64
}

// UpdateRunner moves runner instanceID from one of from to `to`. Leaving idle takes it out of its
// pool; done items expire after Retention. ErrConflict (with the current runner) when it is in
// none of from or bound to another job than ExpectJobID; ErrNotFound when it was never recorded.
func (s *Store) UpdateRunner(ctx context.Context, instanceID string, from []RunnerState, to RunnerState, c RunnerChange) (Runner, error) {
	u := newUpdate()
	u.set(str(string(to)), "state")
	if c.RunnerID != 0 {
		u.set(num(c.RunnerID), "runnerId")
	}
	if c.BusyJobID != 0 {
		u.set(num(c.BusyJobID), "busyJobId")
	}
	if c.JobID != 0 {
		u.set(num(c.JobID), "jobId")
	}
	if to != Idle {
		u.remove("pool")
	}
	if p := runnerPhase(to); p != "" {
		u.set(str(p), "phase")
	} else {
		u.remove("phase")
	}
	if to == Done {
		u.set(num(s.now().Add(Retention).Unix()), "expiresAt")
	}
	states := make([]string, len(from))
	for i, f := range from {
		states[i] = string(f)
	}
	cond := "attribute_exists(pk) AND " + u.in("state", states...)
	if c.ExpectJobID != 0 {
		cond += " AND " + u.name("jobId") + " = " + u.value(num(c.ExpectJobID))
	}
	var out *dynamodb.UpdateItemOutput
	err := retryConflicts(ctx, func() (err error) {
		out, err = s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(s.table),
			Key:                       key(runnerKey(instanceID), "RUNNER"),
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
		cur, gerr := s.Runner(ctx, instanceID)
		if gerr != nil {
			return Runner{}, gerr // ErrNotFound for a runner never recorded
		}
		return cur, fmt.Errorf("runner %s is %s, not %v: %w", instanceID, cur.State, from, ErrConflict)
	}
	if err != nil {
		return Runner{}, fmt.Errorf("move runner %s to %s: %w", instanceID, to, err)
	}
	var it runnerItem
	if err := attributevalue.UnmarshalMap(out.Attributes, &it); err != nil {
		return Runner{}, fmt.Errorf("decode runner %s: %w", instanceID, err)
	}
	return it.Runner, nil
}

// Pool returns the jobs waiting for a runner and the idle runners of one exact label set.
func (s *Store) Pool(ctx context.Context, host string, labelSet []string) ([]Job, []Runner, error) {
	var (
		jobs    []Job
		runners []Runner
		start   map[string]types.AttributeValue
	)
	for {
		out, err := s.api.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(s.table),
			IndexName:                 aws.String(PoolIndex),
			KeyConditionExpression:    aws.String("#p = :p"),
			ExpressionAttributeNames:  map[string]string{"#p": "pool"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(PoolKey(host, labelSet))},
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("query pool: %w", err)
		}
		for _, item := range out.Items {
			var k struct {
				SK string `dynamodbav:"sk"`
			}
			if err := attributevalue.UnmarshalMap(item, &k); err != nil {
				return nil, nil, fmt.Errorf("decode pool item: %w", err)
			}
			switch k.SK {
			case "JOB":
				var it jobItem
				if err := attributevalue.UnmarshalMap(item, &it); err != nil {
					return nil, nil, fmt.Errorf("decode pool job: %w", err)
				}
				jobs = append(jobs, it.Job)
			case "RUNNER":
				var it runnerItem
				if err := attributevalue.UnmarshalMap(item, &it); err != nil {
					return nil, nil, fmt.Errorf("decode pool runner: %w", err)
				}
				runners = append(runners, it.Runner)
			}
		}
		if start = out.LastEvaluatedKey; start == nil {
			return jobs, runners, nil
		}
	}
}

// Retire marks runner instanceID done and gives back the slot it holds, in one transaction, so a
// done runner never holds a slot (a crash cannot leave one behind, and no step has to find one).
// from and expectJobID condition it as in UpdateRunner. It returns the runner as it was before;
// ErrConflict (with the current runner) when it is in none of from or bound to another job;
// ErrNotFound when it was never recorded. A counter already at zero (drift) does not keep the
// runner from retiring: it retires, and ErrCounterDrift says so.
func (s *Store) Retire(ctx context.Context, instanceID string, from []RunnerState, expectJobID int64) (Runner, error) {
	for range 2 { // a second round when the slot flag changed between the read and the write
		cur, err := s.Runner(ctx, instanceID)
		if err != nil {
			return Runner{}, err
		}
		if !slices.Contains(from, cur.State) || expectJobID != 0 && cur.JobID != expectJobID {
			return cur, fmt.Errorf("runner %s is %s (job %d), not %v: %w", instanceID, cur.State, cur.JobID, from, ErrConflict)
		}
		if !cur.HoldsSlot {
			_, err := s.UpdateRunner(ctx, instanceID, from, Done, RunnerChange{ExpectJobID: expectJobID})
			return cur, err
		}
		u := newUpdate()
		u.set(str(string(Done)), "state")
		u.set(num(s.now().Add(Retention).Unix()), "expiresAt")
		u.remove("pool")
		u.remove("phase")
		u.remove("holdsSlot")
		states := make([]string, len(from))
		for i, f := range from {
			states[i] = string(f)
		}
		cond := "attribute_exists(pk) AND " + u.in("state", states...) + " AND " + u.name("holdsSlot") + " = " + u.value(&types.AttributeValueMemberBOOL{Value: true})
		if expectJobID != 0 {
			cond += " AND " + u.name("jobId") + " = " + u.value(num(expectJobID))
		}
		runner := types.TransactWriteItem{Update: &types.Update{
			TableName: aws.String(s.table), Key: key(runnerKey(instanceID), "RUNNER"),
			UpdateExpression: aws.String(u.expression()), ConditionExpression: aws.String(cond),
			ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values,
		}}
		what := "retire runner " + instanceID
		codes, err := s.transact(ctx, what, []types.TransactWriteItem{s.counter("total", -1, 0), s.counter("preset#"+cur.Preset, -1, 0), runner})
		switch {
		case err != nil:
			return cur, err
		case codes == nil:
			return cur, nil
		case codes[2] == reasonCondition:
			continue // moved, or its slot went, since the read: read again
		}
		// A counter was already at zero: retire all the same; the reaper repairs the counter.
		if codes, err = s.transact(ctx, what, []types.TransactWriteItem{runner}); err != nil || codes != nil {
			if err == nil {
				continue
			}
			return cur, err
		}
		return cur, fmt.Errorf("%s: counters already at zero: %w", what, ErrCounterDrift)
	}
	cur, err := s.Runner(ctx, instanceID)
	if err != nil {
		return Runner{}, err
	}
	return cur, fmt.Errorf("retire runner %s: it changed under us twice: %w", instanceID, ErrConflict)
}
