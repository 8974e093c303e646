package world

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// DynamoDB is a DynamoDB client for moto that behaves as DynamoDB does where moto does not:
//
//  1. writes reach moto one at a time. DynamoDB applies every conditional write and every
//     transaction atomically; moto's server checks conditions and applies updates without a lock,
//     so two concurrent transactions on one counter can both pass their conditions;
//  2. transaction conflicts, which moto never produces, can be injected (InjectConflicts): DynamoDB
//     cancels a transaction that races another on one item (TransactionCanceledException with a
//     TransactionConflict reason) and refuses a single write to an item a transaction is writing
//     (TransactionConflictException); nothing is written then;
//  3. BatchGetItem refuses what DynamoDB refuses (more than 100 keys, a key twice) and, as
//     DynamoDB may under load, answers only the first half of the keys of a request with more
//     than one, the rest as UnprocessedKeys, so every caller's retry of them is exercised.
//
// Other reads go straight to moto.
type DynamoDB struct {
	*dynamodb.Client
	mu sync.Mutex

	conflictRate atomic.Uint64 // a float64's bits: the share of writes refused with a conflict
	conflicts    atomic.Int64
}

// NewDynamoDB returns the client for cfg (see AWS).
func NewDynamoDB(cfg aws.Config) *DynamoDB { return &DynamoDB{Client: dynamodb.NewFromConfig(cfg)} }

// InjectConflicts makes about rate (0 to 1) of the transactions, and half as many single-item
// writes, fail with a transaction conflict before they reach moto.
func (d *DynamoDB) InjectConflicts(rate float64) { d.conflictRate.Store(math.Float64bits(rate)) }

// Conflicts returns how many conflicts were injected.
func (d *DynamoDB) Conflicts() int64 { return d.conflicts.Load() }

func (d *DynamoDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if d.conflict(0.5) {
		return nil, writeConflict("PutItem")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.Client.PutItem(ctx, in, optFns...)
}

func (d *DynamoDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if d.conflict(0.5) {
		return nil, writeConflict("UpdateItem")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.Client.UpdateItem(ctx, in, optFns...)
}

func (d *DynamoDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if d.conflict(1) {
		// As DynamoDB reports it: one reason per item, in order; the item that raced another
		// request says TransactionConflict, the others None.
		reasons := make([]types.CancellationReason, len(in.TransactItems))
		hit := rand.N(len(reasons))
		for i := range reasons {
			reasons[i].Code = aws.String("None")
		}
		reasons[hit] = types.CancellationReason{Code: aws.String("TransactionConflict"), Message: aws.String("Transaction is ongoing for the item")}
		return nil, &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "TransactWriteItems", Err: &types.TransactionCanceledException{
			Message:             aws.String("Transaction cancelled, please refer cancellation reasons for specific reasons [" + codes(reasons) + "]"),
			CancellationReasons: reasons,
		}}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.Client.TransactWriteItems(ctx, in, optFns...)
}

// conflict decides whether this write is refused; scale is the share of the rate it gets.
func (d *DynamoDB) conflict(scale float64) bool {
	rate := math.Float64frombits(d.conflictRate.Load()) * scale
	if rate <= 0 || rand.Float64() >= rate {
		return false
	}
	d.conflicts.Add(1)
	return true
}

func writeConflict(op string) error {
	return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: op, Err: &types.TransactionConflictException{
		Message: aws.String("Transaction is ongoing for the item"),
	}}
}

func codes(reasons []types.CancellationReason) string {
	s := ""
	for i, r := range reasons {
		if i > 0 {
			s += ", "
		}
		s += aws.ToString(r.Code)
	}
	return s
}

// BatchGetItem: see the type's comment (3).
func (d *DynamoDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	invalid := func(msg string) error {
		return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "BatchGetItem", Err: &smithy.GenericAPIError{Code: "ValidationException", Message: msg}}
	}
	total := 0
	now := map[string]types.KeysAndAttributes{}
	later := map[string]types.KeysAndAttributes{}
	for table, ka := range in.RequestItems {
		total += len(ka.Keys)
		seen := map[string]bool{}
		for _, k := range ka.Keys {
			id := keyString(k)
			if seen[id] {
				return nil, invalid("Provided list of item keys contains duplicates")
			}
			seen[id] = true
		}
		half := (len(ka.Keys) + 1) / 2
		first, rest := ka, ka
		first.Keys, rest.Keys = ka.Keys[:half], ka.Keys[half:]
		now[table] = first
		if len(rest.Keys) > 0 {
			later[table] = rest
		}
	}
	if total > 100 {
		return nil, invalid("Too many items requested for the BatchGetItem call")
	}
	req := *in
	req.RequestItems = now
	out, err := d.Client.BatchGetItem(ctx, &req, optFns...)
	if err != nil {
		return nil, err
	}
	for table, ka := range later {
		if out.UnprocessedKeys == nil {
			out.UnprocessedKeys = map[string]types.KeysAndAttributes{}
		}
		out.UnprocessedKeys[table] = ka
	}
	return out, nil
}

// keyString identifies a key by its attributes' names and values.
func keyString(k map[string]types.AttributeValue) string {
	names := slices.Sorted(maps.Keys(k))
	var b strings.Builder
	for _, n := range names {
		switch v := k[n].(type) {
		case *types.AttributeValueMemberS:
			fmt.Fprintf(&b, "%s=S:%s;", n, v.Value)
		case *types.AttributeValueMemberN:
			fmt.Fprintf(&b, "%s=N:%s;", n, v.Value)
		case *types.AttributeValueMemberB:
			fmt.Fprintf(&b, "%s=B:%x;", n, v.Value)
		default:
			fmt.Fprintf(&b, "%s=%T;", n, v)
		}
	}
	return b.String()
}
