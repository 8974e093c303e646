package world

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// TestDynamoDBBatchGetItem (local world): BatchGetItem as DynamoDB answers it where moto does
// not: a repeated key and more than 100 keys are a ValidationException; of three keys, the first
// two are answered and the third comes back unprocessed, and asked again it is answered.
func TestDynamoDBBatchGetItem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := AWS(t)
	db := NewDynamoDB(cfg)
	table := StateTable(t, cfg)
	k := func(i int) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("JOB#h#%d", i)}, "sk": &types.AttributeValueMemberS{Value: "JOB"}}
	}
	for i := range 3 {
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: k(i)}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(keys ...map[string]types.AttributeValue) (*dynamodb.BatchGetItemOutput, error) {
		return db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{table: {Keys: keys, ConsistentRead: aws.Bool(true)}}})
	}
	var many []map[string]types.AttributeValue
	for i := range 101 {
		many = append(many, k(i))
	}
	for name, keys := range map[string][]map[string]types.AttributeValue{"a repeated key": {k(0), k(1), k(0)}, "101 keys": many} {
		var api smithy.APIError
		if _, err := get(keys...); !errors.As(err, &api) || api.ErrorCode() != "ValidationException" {
			t.Errorf("%s: %v, want a ValidationException", name, err)
		}
	}
	out, err := get(k(0), k(1), k(2))
	if err != nil {
		t.Fatal(err)
	}
	left := out.UnprocessedKeys[table].Keys
	if len(out.Responses[table]) != 2 || len(left) != 1 {
		t.Fatalf("%d answered, %d unprocessed; want 2 and 1", len(out.Responses[table]), len(left))
	}
	if out, err = get(left...); err != nil || len(out.Responses[table]) != 1 || len(out.UnprocessedKeys) != 0 {
		t.Fatalf("the unprocessed key asked again: %v, %+v", err, out)
	}
}
