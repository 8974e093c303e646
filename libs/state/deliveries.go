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

// Redelivery claims, REDELIVERY / <delivery GUID>: the reaper redelivers a failed webhook delivery
// only after claiming its GUID here, so that one delivery is redelivered once however many reaper
// runs see it, one after the other or at once. A claim expires (TTL) after the time its caller
// gives, which must outlast the window in which the delivery can be seen as missed.

// ClaimRedelivery claims the redelivery of the webhook delivery guid until expiresAt. It reports
// whether this call claimed it: false when a claim is held already (another run's, or a former
// one's). A released claim can be claimed again.
func (s *Store) ClaimRedelivery(ctx context.Context, guid string, expiresAt time.Time) (bool, error) {
	err := retryConflicts(ctx, func() error {
		_, err := s.api.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(s.table),
			Item: map[string]types.AttributeValue{
				"pk": str("REDELIVERY"), "sk": str(guid),
				"claimedAt": str(s.now().UTC().Format(time.RFC3339Nano)),
				"expiresAt": num(expiresAt.Unix()),
			},
			ConditionExpression:       aws.String("attribute_not_exists(pk) OR #r = :t"),
			ExpressionAttributeNames:  map[string]string{"#r": "released"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberBOOL{Value: true}},
		})
		return err
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim redelivery of %s: %w", guid, err)
	}
	return true, nil
}

// ReleaseRedelivery gives a claim back, for a redelivery GitHub did not take (it failed, or was
// throttled): the next run may claim it again. The item stays, with its TTL, until then. A claim
// that does not exist is not an error.
func (s *Store) ReleaseRedelivery(ctx context.Context, guid string) error {
	err := retryConflicts(ctx, func() error {
		_, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(s.table),
			Key:                       key("REDELIVERY", guid),
			UpdateExpression:          aws.String("SET #r = :t"),
			ConditionExpression:       aws.String("attribute_exists(pk)"),
			ExpressionAttributeNames:  map[string]string{"#r": "released"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberBOOL{Value: true}},
		})
		return err
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("release redelivery of %s: %w", guid, err)
	}
	return nil
}
