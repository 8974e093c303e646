package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ErrCapReached means a runner cap is full; the job waits.
var ErrCapReached = errors.New("runner cap reached")

// Every launched runner is counted (CAP/total and CAP/preset#<name>), capped or not, so the
// counts stay right when an operator sets a cap later. A slot moves with its launch: taken for a
// job (slotHeld on the job) before CreateFleet, carried to the runner item (holdsSlot) once the
// instance is recorded, given back from the job when the launch surely made nothing, released
// from the runner when it is done. Each move is one transaction, so a crash cannot leak a slot
// or free one twice.

// AcquireSlot takes a slot for job (host, id), which must be provisioning, under the total cap and
// the preset's (0 = no cap), and fixes the launch inputs of this try on the job (launch), so that a
// retry of the same try sends the same request. A job that already holds one (a retry) keeps it.
// ErrCapReached when a cap is full; nothing is taken then. A transaction conflict is retried and
// never read as a full cap.
func (s *Store) AcquireSlot(ctx context.Context, host string, id int64, preset string, maxTotal, maxPreset int, launch LaunchSpec) error {
	av, err := attributevalue.Marshal(launch)
	if err != nil {
		return fmt.Errorf("encode launch of job %d: %w", id, err)
	}
	u := newUpdate()
	u.set(&types.AttributeValueMemberBOOL{Value: true}, "slotHeld")
	u.set(av, "launch")
	u.set(str(preset), "preset") // the counter a give-back decrements
	jobCond := u.name("state") + " = " + u.value(str(string(Provisioning))) + " AND attribute_not_exists(" + u.name("slotHeld") + ")"
	codes, err := s.transact(ctx, fmt.Sprintf("take slot for job %d", id), []types.TransactWriteItem{
		s.counter("total", 1, maxTotal),
		s.counter("preset#"+preset, 1, maxPreset),
		{Update: &types.Update{
			TableName: aws.String(s.table), Key: key(jobKey(host, id), "JOB"),
			UpdateExpression: aws.String(u.expression()), ConditionExpression: aws.String(jobCond),
			ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values,
		}},
	})
	if err != nil || codes == nil {
		return err
	}
	if codes[2] == reasonCondition {
		j, err := s.Job(ctx, host, id)
		switch {
		case err != nil:
			return err
		case j.State != Provisioning:
			return fmt.Errorf("take slot for job %d: job is %s: %w", id, j.State, ErrConflict)
		case j.SlotHeld:
			return nil
		}
		return fmt.Errorf("take slot for job %d: job changed meanwhile: %w", id, ErrConflict)
	}
	return fmt.Errorf("preset %s (cap %d, total cap %d): %w", preset, maxPreset, maxTotal, ErrCapReached)
}

// GiveBackSlot returns the slot job (host, id) holds, when its launch surely made no instance or
// the job moved on before its instance was recorded. Once, however often it is called.
func (s *Store) GiveBackSlot(ctx context.Context, host string, id int64, preset string) error {
	return s.releaseFrom(ctx, key(jobKey(host, id), "JOB"), "slotHeld", preset, fmt.Sprintf("job %d", id))
}

// ReleaseSlot gives back the slot a runner holds, exactly once however often it is called.
func (s *Store) ReleaseSlot(ctx context.Context, instanceID string) error {
	r, err := s.Runner(ctx, instanceID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !r.HoldsSlot {
		return nil
	}
	return s.releaseFrom(ctx, key(runnerKey(instanceID), "RUNNER"), "holdsSlot", r.Preset, "runner "+instanceID)
}

// releaseFrom removes the slot flag attr from item k and decrements both counters, atomically. A
// flag already gone means released before. A counter already at zero (drift: a slot counted
// nowhere) must not keep the flag forever: the flag goes alone and the drift is reported.
func (s *Store) releaseFrom(ctx context.Context, k map[string]types.AttributeValue, attr, preset, what string) error {
	flag := types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(s.table), Key: k,
		UpdateExpression:          aws.String("REMOVE #f"),
		ConditionExpression:       aws.String("#f = :t"),
		ExpressionAttributeNames:  map[string]string{"#f": attr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberBOOL{Value: true}},
	}}
	codes, err := s.transact(ctx, "release slot of "+what, []types.TransactWriteItem{
		s.counter("total", -1, 0),
		s.counter("preset#"+preset, -1, 0),
		flag,
	})
	if err != nil || codes == nil || codes[2] == reasonCondition {
		return err
	}
	codes, err = s.transact(ctx, "release slot of "+what, []types.TransactWriteItem{flag})
	if err != nil || codes != nil {
		return err
	}
	return fmt.Errorf("release slot of %s: counters already at zero (repaired: flag removed): %w", what, ErrCounterDrift)
}

// ErrCounterDrift means a slot counter disagreed with the slots held; the reaper recomputes them.
var ErrCounterDrift = errors.New("slot counter drift")

// counter is a transaction item adding delta to CAP/<name>: below max when adding (0 = no cap),
// never below zero when taking away.
func (s *Store) counter(name string, delta int64, max int) types.TransactWriteItem {
	u := &types.Update{
		TableName:                 aws.String(s.table),
		Key:                       key("CAP", name),
		UpdateExpression:          aws.String("ADD #c :d"),
		ExpressionAttributeNames:  map[string]string{"#c": "count"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":d": num(delta)},
	}
	switch {
	case delta > 0 && max > 0:
		u.ConditionExpression = aws.String("attribute_not_exists(#c) OR #c < :max")
		u.ExpressionAttributeValues[":max"] = num(int64(max))
	case delta < 0:
		u.ConditionExpression = aws.String("#c > :zero")
		u.ExpressionAttributeValues[":zero"] = num(0)
	}
	return types.TransactWriteItem{Update: u}
}

// Slots returns the runners counted now, in total and per preset name.
func (s *Store) Slots(ctx context.Context) (total int, perPreset map[string]int, err error) {
	out, err := s.api.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("pk = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": str("CAP")},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return 0, nil, fmt.Errorf("read slot counters: %w", err)
	}
	perPreset = map[string]int{}
	for _, item := range out.Items {
		var c struct {
			SK    string `dynamodbav:"sk"`
			Count int    `dynamodbav:"count"`
		}
		if err := attributevalue.UnmarshalMap(item, &c); err != nil {
			return 0, nil, fmt.Errorf("decode slot counter: %w", err)
		}
		if name, ok := strings.CutPrefix(c.SK, "preset#"); ok {
			perPreset[name] = c.Count
		} else if c.SK == "total" {
			total = c.Count
		}
	}
	return total, perPreset, nil
}

// hourFormat is the sort key of an hour's activity item (UTC): sorts as time does.
const hourFormat = "2006-01-02T15"

// Activity kinds counted per hour.
const (
	ActivityCompleted = "completed"
	ActivityFailed    = "failed"
)

// CountActivity adds one to the hour's counter of kind.
func (s *Store) CountActivity(ctx context.Context, at time.Time, kind string) error {
	_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key("ACTIVITY", at.UTC().Format(hourFormat)),
		UpdateExpression:          aws.String("ADD #k :one SET expiresAt = if_not_exists(expiresAt, :exp)"),
		ExpressionAttributeNames:  map[string]string{"#k": kind},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1), ":exp": num(at.Add(Retention).Unix())},
	})
	if err != nil {
		return fmt.Errorf("count %s activity: %w", kind, err)
	}
	return nil
}

// Hour is one hour's activity counters.
type Hour struct {
	Start     time.Time
	Completed int
	Failed    int
}

// Activity returns the hourly counters of the hours from `from`'s hour to `to`'s, oldest first;
// hours without activity are left out. One query (at most 25 small items for a day).
func (s *Store) Activity(ctx context.Context, from, to time.Time) ([]Hour, error) {
	out, err := s.api.Query(ctx, &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("pk = :p AND sk BETWEEN :from AND :to"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": str("ACTIVITY"), ":from": str(from.UTC().Format(hourFormat)), ":to": str(to.UTC().Format(hourFormat)),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("read activity: %w", err)
	}
	hours := make([]Hour, 0, len(out.Items))
	for _, item := range out.Items {
		var h struct {
			SK        string `dynamodbav:"sk"`
			Completed int    `dynamodbav:"completed"`
			Failed    int    `dynamodbav:"failed"`
		}
		if err := attributevalue.UnmarshalMap(item, &h); err != nil {
			return nil, fmt.Errorf("decode activity: %w", err)
		}
		start, err := time.Parse(hourFormat, h.SK)
		if err != nil {
			return nil, fmt.Errorf("decode activity hour %q: %w", h.SK, err)
		}
		hours = append(hours, Hour{Start: start, Completed: h.Completed, Failed: h.Failed})
	}
	return hours, nil
}
