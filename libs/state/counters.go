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

// ErrCapReached means a runner cap is full; the job waits.
var ErrCapReached = errors.New("runner cap reached")

// AcquireSlot counts one more runner against the total cap and the preset's cap (0 = no cap) with
// conditional increments, so concurrent invocations can never exceed a cap. When the preset's cap
// is full the total's slot is given back. Callers record the slot on the runner (HoldsSlot) and
// release it with ReleaseSlot.
func (s *Store) AcquireSlot(ctx context.Context, preset string, maxTotal, maxPreset int) error {
	if err := s.increment(ctx, "total", maxTotal); err != nil {
		return err
	}
	if err := s.increment(ctx, "preset#"+preset, maxPreset); err != nil {
		if rerr := s.decrement(ctx, "total", maxTotal); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	return nil
}

// ReleaseSlot gives back the slot a runner holds, exactly once however often it is called.
func (s *Store) ReleaseSlot(ctx context.Context, instanceID string, maxTotal, maxPreset int) error {
	out, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key(runnerKey(instanceID), "RUNNER"),
		UpdateExpression:          aws.String("REMOVE holdsSlot"),
		ConditionExpression:       aws.String("holdsSlot = :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberBOOL{Value: true}},
		ReturnValues:              types.ReturnValueAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil // released before, or never held
	}
	if err != nil {
		return fmt.Errorf("release slot of %s: %w", instanceID, err)
	}
	var r Runner
	if err := attributevalue.UnmarshalMap(out.Attributes, &r); err != nil {
		return fmt.Errorf("decode runner %s: %w", instanceID, err)
	}
	return errors.Join(s.decrement(ctx, "total", maxTotal), s.decrement(ctx, "preset#"+r.Preset, maxPreset))
}

// GiveBackSlot returns a slot taken by AcquireSlot that no runner came to hold (the launch failed).
func (s *Store) GiveBackSlot(ctx context.Context, preset string, maxTotal, maxPreset int) error {
	return errors.Join(s.decrement(ctx, "total", maxTotal), s.decrement(ctx, "preset#"+preset, maxPreset))
}

// increment adds one to counter CAP/<name> unless it is at max (0 = no cap, nothing counted).
func (s *Store) increment(ctx context.Context, name string, max int) error {
	if max <= 0 {
		return nil
	}
	_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key("CAP", name),
		UpdateExpression:          aws.String("ADD #c :one"),
		ConditionExpression:       aws.String("attribute_not_exists(#c) OR #c < :max"),
		ExpressionAttributeNames:  map[string]string{"#c": "count"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1), ":max": num(int64(max))},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("cap %s of %d: %w", name, max, ErrCapReached)
	}
	if err != nil {
		return fmt.Errorf("count runner against cap %s: %w", name, err)
	}
	return nil
}

func (s *Store) decrement(ctx context.Context, name string, max int) error {
	if max <= 0 {
		return nil
	}
	_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key("CAP", name),
		UpdateExpression:          aws.String("ADD #c :minus"),
		ConditionExpression:       aws.String("#c > :zero"),
		ExpressionAttributeNames:  map[string]string{"#c": "count"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":minus": num(-1), ":zero": num(0)},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("release cap %s: %w", name, err)
	}
	return nil
}

// Activity kinds counted per hour.
const (
	ActivityCompleted = "completed"
	ActivityFailed    = "failed"
)

// CountActivity adds one to the hour's counter of kind.
func (s *Store) CountActivity(ctx context.Context, at time.Time, kind string) error {
	_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key("ACTIVITY", at.UTC().Format("2006-01-02T15")),
		UpdateExpression:          aws.String("ADD #k :one SET expiresAt = if_not_exists(expiresAt, :exp)"),
		ExpressionAttributeNames:  map[string]string{"#k": kind},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1), ":exp": num(at.Add(Retention).Unix())},
	})
	if err != nil {
		return fmt.Errorf("count %s activity: %w", kind, err)
	}
	return nil
}

// PresetImage is a preset's AMI status, kept by amiwatcher.
type PresetImage struct {
	Name          string    `dynamodbav:"name"`
	Status        string    `dynamodbav:"status"` // building | ready | failed
	AMIID         string    `dynamodbav:"amiId,omitempty"`
	PreviousAMIID string    `dynamodbav:"previousAmiId,omitempty"`
	UpdatedAt     time.Time `dynamodbav:"updatedAt"`
}

// UsableAMI is the AMI jobs launch from: the current one, or while a rebuild runs or after it
// failed, the previous one. Empty when the preset has no AMI at all yet.
func (p PresetImage) UsableAMI() string {
	if p.AMIID != "" {
		return p.AMIID
	}
	return p.PreviousAMIID
}

// PresetImage reads a preset's AMI status; a preset never built is ErrNotFound.
func (s *Store) PresetImage(ctx context.Context, name string) (PresetImage, error) {
	var p PresetImage
	err := s.get(ctx, "PRESET", name, "preset "+name+" image", &p)
	return p, err
}

// PutPresetImage writes a preset's AMI status.
func (s *Store) PutPresetImage(ctx context.Context, p PresetImage) error {
	av, err := attributevalue.MarshalMap(p)
	if err != nil {
		return fmt.Errorf("encode preset %s image: %w", p.Name, err)
	}
	av["pk"], av["sk"] = str("PRESET"), str(p.Name)
	if _, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: av}); err != nil {
		return fmt.Errorf("put preset %s image: %w", p.Name, err)
	}
	return nil
}
