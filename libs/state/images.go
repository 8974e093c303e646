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

// Preset image statuses.
const (
	ImageBuilding = "building"
	ImageReady    = "ready"
	ImageFailed   = "failed"
)

// PresetImage is a preset's AMI status, kept by amiwatcher: the AMI jobs launch from, the one
// before it (the fallback while a rebuild runs, fails or its AMI disappears) and the newest build
// seen, so that events arriving late or twice cannot move the record backwards.
type PresetImage struct {
	Name          string    `dynamodbav:"name"`
	Status        string    `dynamodbav:"status"` // building | ready | failed
	AMIID         string    `dynamodbav:"amiId,omitempty"`
	AMIBuild      string    `dynamodbav:"amiBuild,omitempty"` // the image build AMIID came from, e.g. "1.0.1/3"
	PreviousAMIID string    `dynamodbav:"previousAmiId,omitempty"`
	Build         string    `dynamodbav:"build,omitempty"`  // the newest image build seen, whatever its outcome
	Reason        string    `dynamodbav:"reason,omitempty"` // why the newest build failed
	UpdatedAt     time.Time `dynamodbav:"updatedAt"`
	Rev           int64     `dynamodbav:"rev"` // bumped by every write: the condition of the next
}

// UsableAMI is the AMI jobs launch from: the current one, or when there is none (it disappeared)
// the previous one. Empty when the preset has no AMI at all yet.
func (p PresetImage) UsableAMI() string {
	if p.AMIID != "" {
		return p.AMIID
	}
	return p.PreviousAMIID
}

// PresetImage reads a preset's AMI status; a preset never recorded is ErrNotFound.
func (s *Store) PresetImage(ctx context.Context, name string) (PresetImage, error) {
	var p PresetImage
	err := s.get(ctx, "PRESET", name, "preset "+name+" image", &p)
	return p, err
}

// PresetImages reads every preset's AMI status (one query: the PRESET partition).
func (s *Store) PresetImages(ctx context.Context) ([]PresetImage, error) {
	var (
		out   []PresetImage
		start map[string]types.AttributeValue
	)
	for {
		page, err := s.api.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(s.table),
			KeyConditionExpression:    aws.String("pk = :p"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": str("PRESET")},
			ConsistentRead:            aws.Bool(true),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, fmt.Errorf("read preset images: %w", err)
		}
		for _, item := range page.Items {
			var p PresetImage
			if err := attributevalue.UnmarshalMap(item, &p); err != nil {
				return nil, fmt.Errorf("decode preset image: %w", err)
			}
			out = append(out, p)
		}
		if start = page.LastEvaluatedKey; start == nil {
			return out, nil
		}
	}
}

// PutPresetImage writes a preset's AMI status as it is, whatever was there (tests and tools).
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

// ErrUnchanged is what a change function returns to leave the record as it is.
var ErrUnchanged = errors.New("preset image unchanged")

// UpdatePresetImage applies change to preset name's record (exists is false for a preset never
// recorded, with Name set) and writes the result, conditioned on the record not having changed
// since it was read: a concurrent writer makes it read and apply again. change returns
// ErrUnchanged to write nothing; the record as it stands is returned then.
func (s *Store) UpdatePresetImage(ctx context.Context, name string, change func(cur PresetImage, exists bool) (PresetImage, error)) (PresetImage, error) {
	for try := 1; ; try++ {
		cur, err := s.PresetImage(ctx, name)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return PresetImage{}, err
		}
		cur.Name = name
		next, err := change(cur, exists)
		if errors.Is(err, ErrUnchanged) {
			return cur, nil
		}
		if err != nil {
			return cur, err
		}
		next.Name, next.Rev = name, cur.Rev+1
		if next.UpdatedAt.IsZero() {
			next.UpdatedAt = s.now().UTC()
		}
		av, err := attributevalue.MarshalMap(next)
		if err != nil {
			return cur, fmt.Errorf("encode preset %s image: %w", name, err)
		}
		av["pk"], av["sk"] = str("PRESET"), str(name)
		cond, values := "attribute_not_exists(pk)", map[string]types.AttributeValue(nil)
		if exists {
			cond, values = "rev = :rev", map[string]types.AttributeValue{":rev": num(cur.Rev)}
		}
		err = retryConflicts(ctx, func() error {
			_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
				TableName: aws.String(s.table), Item: av,
				ConditionExpression: aws.String(cond), ExpressionAttributeValues: values,
			})
			return err
		})
		var ccf *types.ConditionalCheckFailedException
		switch {
		case err == nil:
			return next, nil
		case !errors.As(err, &ccf):
			return cur, fmt.Errorf("update preset %s image: %w", name, err)
		case try == conflictTries:
			return cur, fmt.Errorf("update preset %s image: changed under us %d times: %w", name, try, ErrContention)
		}
	}
}

// DropAMI forgets ami wherever preset name's record names it (it was deregistered or disabled):
// the current AMI gives way to the previous one, or the preset has none left. Forgetting an AMI
// the record does not name changes nothing.
func (s *Store) DropAMI(ctx context.Context, name, ami string) (PresetImage, error) {
	return s.UpdatePresetImage(ctx, name, func(cur PresetImage, exists bool) (PresetImage, error) {
		switch {
		case !exists, ami == "":
			return cur, ErrUnchanged
		case cur.AMIID == ami:
			cur.AMIID, cur.AMIBuild, cur.PreviousAMIID = cur.PreviousAMIID, "", ""
		case cur.PreviousAMIID == ami:
			cur.PreviousAMIID = ""
		default:
			return cur, ErrUnchanged
		}
		cur.Reason = "AMI " + ami + " is gone (deregistered or disabled)"
		if cur.UsableAMI() == "" && cur.Status == ImageReady {
			cur.Status = ImageFailed
		}
		cur.UpdatedAt = time.Time{}
		return cur, nil
	})
}
