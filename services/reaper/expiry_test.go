package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/state"
)

// TestExpiry (local world: a state table of its own in moto). The step changes and counts
// nothing, dry run or not, and does not fail. That is right only while every write that finishes
// an item gives it its TTL, which this test holds libs/state to. Fixtures, each with the expiresAt
// it must carry (TTL: the write's time plus state.Retention):
//   - a job created in each final state (completed, rejected, failed, cancelled): TTL;
//   - a job moved to each final state from each live one (queued, provisioning, launched,
//     running): TTL;
//   - a job created in each live state: none (a live item must not expire);
//   - runners recorded for a launch: left idle: none; idle → done: TTL; idle → busy: none;
//     idle → busy → done: TTL;
//   - an hour's activity counted twice, 50 minutes apart: the TTL of its first count;
//   - a redelivery claim: the TTL it was claimed with.
func TestExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := world.AWS(t)
	db := world.NewDynamoDB(cfg)
	table := world.StateTable(t, cfg)
	now := time.Date(2026, 11, 27, 10, 5, 0, 0, time.UTC)
	store := state.New(db, table).WithClock(func() time.Time { return now })
	ttl := now.Add(state.Retention).Unix()
	const host = "ghes.example.com"

	for _, dryRun := range []bool{false, true} {
		p := &pass{margin: 20 * time.Second, dryRun: dryRun, counts: map[string]int{}}
		rp := &Reaper{jobs: store, now: func() time.Time { return now }}
		if err := rp.expiry(ctx, p); err != nil {
			t.Errorf("expiry (dry run %v): %v", dryRun, err)
		}
		if diff := cmp.Diff(map[string]int{}, p.counts); diff != "" {
			t.Errorf("expiry counts (dry run %v) (-want +got):\n%s", dryRun, diff)
		}
	}

	want := map[string]int64{} // "pk sk" -> expiresAt (0: none)
	labels := []string{"self-hosted", "spotrunner/linux-x64"}
	id := int64(0)
	job := func(st state.JobState) state.Job {
		t.Helper()
		id++
		j, created, err := store.CreateJob(ctx, state.Job{Host: host, ID: id, Owner: "acme", OwnerType: "Organization", Repo: "app",
			InstallationID: 11, Labels: labels, LabelSet: labels}, st)
		if err != nil || !created {
			t.Fatalf("create job %d %s: %v, %v", id, st, created, err)
		}
		return j
	}
	jobKey := func(id int64) string { return fmt.Sprintf("JOB#%s#%d JOB", host, id) }
	live := []state.JobState{state.Queued, state.Provisioning, state.Launched, state.Running}
	final := []state.JobState{state.Completed, state.Rejected, state.Failed, state.Cancelled}
	for _, st := range final {
		want[jobKey(job(st).ID)] = ttl
	}
	for _, st := range live {
		want[jobKey(job(st).ID)] = 0
		for _, to := range final {
			j := job(st)
			if _, err := store.Transition(ctx, host, j.ID, []state.JobState{st}, to, state.Change{}); err != nil {
				t.Fatalf("job %d %s → %s: %v", j.ID, st, to, err)
			}
			want[jobKey(j.ID)] = ttl
		}
	}

	for _, path := range [][]state.RunnerState{{state.Idle}, {state.Idle, state.Done}, {state.Idle, state.Busy}, {state.Idle, state.Busy, state.Done}} {
		j := job(state.Provisioning)
		iid := fmt.Sprintf("i-%017d", j.ID)
		if _, err := store.RecordLaunch(ctx, j, state.Runner{InstanceID: iid, Host: host, JobID: j.ID, Owner: "acme", InstallationID: 11,
			Preset: "linux-x64", Labels: labels, LabelSet: labels, RunnerName: "spotrunner-" + iid, LaunchedAt: now, Deadline: now.Add(time.Hour)}, time.Minute); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(path); i++ {
			if _, err := store.UpdateRunner(ctx, iid, path[i-1:i], path[i], state.RunnerChange{}); err != nil {
				t.Fatalf("runner %s %v: %v", iid, path[:i+1], err)
			}
		}
		want["RUNNER#"+iid+" RUNNER"] = 0
		if path[len(path)-1] == state.Done {
			want["RUNNER#"+iid+" RUNNER"] = ttl
		}
	}

	if err := store.CountActivity(ctx, now, state.ActivityCompleted); err != nil {
		t.Fatal(err)
	}
	later := now.Add(50 * time.Minute) // same hour
	if err := store.WithClock(func() time.Time { return later }).CountActivity(ctx, later, state.ActivityFailed); err != nil {
		t.Fatal(err)
	}
	want["ACTIVITY "+now.Format("2006-01-02T15")] = ttl

	claimTTL := now.Add(redeliveryClaim)
	if ok, err := store.ClaimRedelivery(ctx, "6f1c6c1e-0000-4000-8000-000000000001", claimTTL); err != nil || !ok {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	want["REDELIVERY 6f1c6c1e-0000-4000-8000-000000000001"] = claimTTL.Unix()

	got := map[string]int64{}
	for k := range want {
		pk, sk, _ := strings.Cut(k, " ")
		out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: sk}}})
		if err != nil {
			t.Fatal(err)
		}
		if out.Item == nil {
			t.Errorf("%s: no such item", k)
			continue
		}
		var it struct {
			ExpiresAt int64 `dynamodbav:"expiresAt"`
		}
		if err := attributevalue.UnmarshalMap(out.Item, &it); err != nil {
			t.Fatal(err)
		}
		got[k] = it.ExpiresAt
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("expiresAt by item (-want +got):\n%s", diff)
	}
}
