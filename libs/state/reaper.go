package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The reaper's writes on the slot bookkeeping: it gives back the slot of a launch nobody will
// finish, and sets a counter that drifted from the slots held back to their number. Both are
// conditioned on what the reaper read, so a launch or release racing with it wins and the reaper
// counts again on its next run.

// SetSlotCount sets the slot counter of preset (the total when preset is "") from old to n, only
// while it still reads old (a counter never written reads 0). ErrConflict when it changed
// meanwhile: a launch or a release between the caller's count and this write is never clobbered.
func (s *Store) SetSlotCount(ctx context.Context, preset string, old, n int) error {
	name := "total"
	if preset != "" {
		name = "preset#" + preset
	}
	if n < 0 {
		return fmt.Errorf("set slot counter %s to %d: a count is never negative", name, n)
	}
	cond := "#c = :old"
	if old == 0 {
		cond = "attribute_not_exists(#c) OR #c = :old"
	}
	err := retryConflicts(ctx, func() error {
		_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(s.table),
			Key:                       key("CAP", name),
			UpdateExpression:          aws.String("SET #c = :n"),
			ConditionExpression:       aws.String(cond),
			ExpressionAttributeNames:  map[string]string{"#c": "count"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":old": num(int64(old)), ":n": num(int64(n))},
		})
		return err
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("set slot counter %s from %d to %d: it changed meanwhile: %w", name, old, n, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("set slot counter %s from %d to %d: %w", name, old, n, err)
	}
	return nil
}

// LeaseEnd is when job j's provisioning lease ended or ends: its leaseUntil, or, for a lease cut
// short (ExpireLease), its last move to provisioning.
func (j Job) LeaseEnd() time.Time {
	end := j.Timeline[string(Provisioning)]
	if j.LeaseUntil > 0 {
		if l := time.UnixMilli(j.LeaseUntil); l.After(end) {
			end = l
		}
	}
	return end
}

// GiveBackStaleSlot returns the slot job j holds, as GiveBackSlot does, but only while the job is
// still as j was read: provisioning, holding its slot, under the same lease. A worker that claims
// the job in between renews the lease and keeps the slot: ErrConflict then, and nothing changes.
// Counters already at zero (drift) lose nothing: the flag goes alone and ErrCounterDrift says so.
func (s *Store) GiveBackStaleSlot(ctx context.Context, j Job) error {
	what := fmt.Sprintf("give back slot of job %d", j.ID)
	flag := types.TransactWriteItem{Update: &types.Update{
		TableName:           aws.String(s.table),
		Key:                 key(jobKey(j.Host, j.ID), "JOB"),
		UpdateExpression:    aws.String("REMOVE #f"),
		ConditionExpression: aws.String("#f = :t AND #s = :p AND " + leaseIs(j.LeaseUntil)),
		ExpressionAttributeNames: map[string]string{
			"#f": "slotHeld", "#s": "state", "#l": "leaseUntil",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":t": &types.AttributeValueMemberBOOL{Value: true}, ":p": str(string(Provisioning)), ":l": num(j.LeaseUntil),
		},
	}}
	codes, err := s.transact(ctx, what, []types.TransactWriteItem{
		s.counter("total", -1, 0),
		s.counter("preset#"+j.Preset, -1, 0),
		flag,
	})
	switch {
	case err != nil || codes == nil:
		return err
	case codes[2] == reasonCondition:
		return fmt.Errorf("%s: claimed, moved on or given back meanwhile: %w", what, ErrConflict)
	}
	codes, err = s.transact(ctx, what, []types.TransactWriteItem{flag})
	switch {
	case err != nil:
		return err
	case codes != nil:
		return fmt.Errorf("%s: claimed, moved on or given back meanwhile: %w", what, ErrConflict)
	}
	return fmt.Errorf("%s: counters already at zero (repaired: flag removed): %w", what, ErrCounterDrift)
}

// leaseIs is the condition that leaseUntil (#l) is still the value read (:l); 0 also matches a
// lease never written.
func leaseIs(leaseUntil int64) string {
	if leaseUntil == 0 {
		return "(attribute_not_exists(#l) OR #l = :l)"
	}
	return "#l = :l"
}
