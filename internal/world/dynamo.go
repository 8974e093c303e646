package world

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// DynamoDB is a DynamoDB client for moto whose writes reach moto one at a time. DynamoDB applies
// every conditional write and every transaction atomically; moto's server checks conditions and
// applies updates without a lock, so two concurrent transactions on one counter can both pass
// their conditions. Serialising the writes gives tests DynamoDB's behaviour; reads go straight.
type DynamoDB struct {
	*dynamodb.Client
	mu sync.Mutex
}

// NewDynamoDB returns the serialising client for cfg (see AWS).
func NewDynamoDB(cfg aws.Config) *DynamoDB { return &DynamoDB{Client: dynamodb.NewFromConfig(cfg)} }

func (d *DynamoDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.Client.PutItem(ctx, in, optFns...)
}

func (d *DynamoDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.Client.UpdateItem(ctx, in, optFns...)
}

func (d *DynamoDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.Client.TransactWriteItems(ctx, in, optFns...)
}
