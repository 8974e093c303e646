package state

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// TestRedeliveryClaims (local world): fixtures are the GUIDs "once", "raced" and "released", and
// "never" that nobody claims. "once" is claimed by its first claim only; "raced" by exactly one of
// twenty claims at once (with write conflicts injected); "released" is claimed, released, and then
// claimed again by exactly one of two claims. Releasing "never" is no error and writes nothing.
// Every claim carries its TTL.
func TestRedeliveryClaims(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := world.AWS(t)
	db := world.NewDynamoDB(cfg)
	s := New(db, world.StateTable(t, cfg))
	exp := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

	claim := func(guid string) bool {
		ok, err := s.ClaimRedelivery(ctx, guid, exp)
		if err != nil {
			t.Errorf("claim %s: %v", guid, err) // Errorf: called from goroutines too
		}
		return ok
	}
	got := map[string][]bool{}
	got["once"] = []bool{claim("once"), claim("once")}

	db.InjectConflicts(0.3)
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if claim("raced") {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	db.InjectConflicts(0)
	got["raced"] = []bool{won.Load() == 1}

	first := claim("released")
	if err := s.ReleaseRedelivery(ctx, "released"); err != nil {
		t.Fatal(err)
	}
	got["released"] = []bool{first, claim("released"), claim("released")}

	if err := s.ReleaseRedelivery(ctx, "never"); err != nil {
		t.Errorf("release of a claim never made: %v", err)
	}

	want := map[string][]bool{"once": {true, false}, "raced": {true}, "released": {true, true, false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claims won (-want +got):\n%s", diff)
	}
	for guid, wantExp := range map[string]int64{"once": exp.Unix(), "raced": exp.Unix(), "released": exp.Unix(), "never": 0} {
		out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: key("REDELIVERY", guid), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		var it struct {
			ExpiresAt int64 `dynamodbav:"expiresAt"`
		}
		if err := attributevalue.UnmarshalMap(out.Item, &it); err != nil {
			t.Fatal(err)
		}
		if it.ExpiresAt != wantExp {
			t.Errorf("claim %s: expiresAt %d, want %d", guid, it.ExpiresAt, wantExp)
		}
	}
}
