package awsgateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// putJob is a transaction item creating pk=job#id only if it is not there, as libs/state writes.
func putJob(table, id string) dbtypes.TransactWriteItem {
	return dbtypes.TransactWriteItem{Put: &dbtypes.Put{
		TableName:           aws.String(table),
		Item:                map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: "job#" + id}, "sk": &dbtypes.AttributeValueMemberS{Value: "job"}},
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	}}
}

// jobsIn returns which of ids have their item in table.
func jobsIn(t *testing.T, db *dynamodb.Client, table string, ids ...string) []string {
	t.Helper()
	var got []string
	for _, id := range ids {
		out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true), Key: map[string]dbtypes.AttributeValue{
			"pk": &dbtypes.AttributeValueMemberS{Value: "job#" + id}, "sk": &dbtypes.AttributeValueMemberS{Value: "job"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if out.Item != nil {
			got = append(got, id)
		}
	}
	return got
}

// TestWorldDynamoConflicts (local world): fixtures are a state table created through the gateway
// and a transaction of three conditional puts. With conflicts injected at rate 1 the real SDK
// client must decode the answer as DynamoDB's TransactionCanceledException (HTTP 400): one
// reason per item, exactly one TransactionConflict ("Transaction is ongoing for the item") and
// None for the others, the codes listed in the message; nothing must be written. With the rate
// back at 0 the same transaction must reach moto and write all three items.
func TestWorldDynamoConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, cfg := startWorld(t, Options{})
	table := world.StateTable(t, cfg)
	db := dynamodb.NewFromConfig(cfg)
	ids := []string{"1", "2", "3"}
	in := &dynamodb.TransactWriteItemsInput{TransactItems: []dbtypes.TransactWriteItem{putJob(table, "1"), putJob(table, "2"), putJob(table, "3")}}

	g.InjectConflicts(1)
	_, err := db.TransactWriteItems(ctx, in, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })
	var cancelled *dbtypes.TransactionCanceledException
	if !errors.As(err, &cancelled) {
		t.Fatalf("TransactWriteItems: %v, want a TransactionCanceledException", err)
	}
	checkAPIError(t, err, http.StatusBadRequest, "TransactionCanceledException", "")
	var codes []string
	conflicts := 0
	for _, r := range cancelled.CancellationReasons {
		codes = append(codes, aws.ToString(r.Code))
		switch aws.ToString(r.Code) {
		case "TransactionConflict":
			conflicts++
			if got := aws.ToString(r.Message); got != "Transaction is ongoing for the item" {
				t.Errorf("conflict reason message %q", got)
			}
		case "None":
		default:
			t.Errorf("reason %q, want TransactionConflict or None", aws.ToString(r.Code))
		}
	}
	if len(codes) != 3 || conflicts != 1 {
		t.Errorf("cancellation reasons %v, want three with one TransactionConflict", codes)
	}
	if want := "Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(codes, ", ") + "]"; cancelled.ErrorMessage() != want {
		t.Errorf("message %q, want %q", cancelled.ErrorMessage(), want)
	}
	if got := jobsIn(t, db, table, ids...); len(got) != 0 {
		t.Errorf("items %v written by a cancelled transaction", got)
	}
	if n := g.Conflicts(); n != 1 {
		t.Errorf("Conflicts() = %d, want 1", n)
	}

	g.InjectConflicts(0)
	if _, err := db.TransactWriteItems(ctx, in); err != nil {
		t.Fatalf("TransactWriteItems without conflicts: %v", err)
	}
	if diff := cmp.Diff(ids, jobsIn(t, db, table, ids...)); diff != "" {
		t.Errorf("items written (-want +got):\n%s", diff)
	}
	if n := g.Conflicts(); n != 1 {
		t.Errorf("Conflicts() = %d, want still 1", n)
	}
}

// TestDynamoSingleWriteConflicts: fixtures are a fake moto and 400 UpdateItem and 50 DeleteItem
// calls with conflicts injected at rate 1. About half the updates (the rate's share for a single
// write; 130 to 270 allows eight standard deviations) must be refused as DynamoDB refuses them,
// TransactionConflictException, and never reach the fake; the others and every delete must.
func TestDynamoSingleWriteConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, moto, cfg := startFake(t)
	g.InjectConflicts(1)
	db := dynamodb.NewFromConfig(cfg)
	key := map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: "k"}, "sk": &dbtypes.AttributeValueMemberS{Value: "s"}}
	refused := 0
	for range 400 {
		_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String("t"), Key: key, UpdateExpression: aws.String("SET n = :n"),
			ExpressionAttributeValues: map[string]dbtypes.AttributeValue{":n": &dbtypes.AttributeValueMemberN{Value: "1"}}})
		var conflict *dbtypes.TransactionConflictException
		switch {
		case err == nil:
		case errors.As(err, &conflict) && conflict.ErrorMessage() == "Transaction is ongoing for the item":
			refused++
		default:
			t.Fatalf("UpdateItem: %v, want success or TransactionConflictException", err)
		}
	}
	for range 50 {
		if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("t"), Key: key}); err != nil {
			t.Fatalf("DeleteItem: %v, want no conflict (DeleteItem gets none)", err)
		}
	}
	if refused < 130 || refused > 270 {
		t.Errorf("%d of 400 updates refused, want about 200", refused)
	}
	if got, want := len(moto.received()), 400-refused+50; got != want {
		t.Errorf("moto received %d writes, want %d", got, want)
	}
	if n := g.Conflicts(); n != int64(refused) {
		t.Errorf("Conflicts() = %d, want %d", n, refused)
	}
}

// TestDynamoWritesOneAtATime: fixtures are a moto stand-in that takes 20 ms per request and
// records how many requests it holds at once, and 8 concurrent calls of each kind. Writes
// (PutItem, UpdateItem, DeleteItem, TransactWriteItems, BatchWriteItem) must reach it one at a
// time, as DynamoDB applies each atomically; reads (GetItem) must not wait for each other (at
// least two at once: how many overlap depends on the scheduler).
func TestDynamoWritesOneAtATime(t *testing.T) {
	t.Parallel()
	var inFlight, most atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := inFlight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		fmt.Fprint(w, "{}")
	}))
	t.Cleanup(srv.Close)
	g, err := Start(context.Background(), Options{MotoURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	db := dynamodb.NewFromConfig(testConfig(g.URL()))
	key := map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: "k"}}
	item := &dbtypes.WriteRequest{PutRequest: &dbtypes.PutRequest{Item: key}}

	tests := []struct {
		name   string
		call   func(ctx context.Context) error
		serial bool // one request at a time at moto, else several
	}{
		{name: "writes", serial: true, call: func(ctx context.Context) error {
			_, err1 := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("t"), Item: key})
			_, err2 := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String("t"), Key: key})
			_, err3 := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("t"), Key: key})
			_, err4 := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []dbtypes.TransactWriteItem{{Put: &dbtypes.Put{TableName: aws.String("t"), Item: key}}}})
			_, err5 := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dbtypes.WriteRequest{"t": {*item}}})
			return errors.Join(err1, err2, err3, err4, err5)
		}},
		{name: "reads", call: func(ctx context.Context) error {
			_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("t"), Key: key})
			return err
		}},
	}
	for _, tt := range tests { // one after the other: they share the stand-in's counters
		most.Store(0)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if err := tt.call(context.Background()); err != nil {
					t.Errorf("%s: %v", tt.name, err)
				}
			})
		}
		wg.Wait()
		if got := most.Load(); (got == 1) != tt.serial {
			t.Errorf("%s: moto held at most %d requests at once; want one at a time: %v", tt.name, got, tt.serial)
		}
	}
}
