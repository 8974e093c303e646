package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	cfg := world.AWS(t)
	return New(world.NewDynamoDB(cfg), world.StateTable(t, cfg))
}

func testJob(id int64, labelSet ...string) Job {
	if len(labelSet) == 0 {
		labelSet = []string{"self-hosted", "spotrunner/linux-x64"}
	}
	return Job{Host: "ghes.example.com", ID: id, Owner: "acme", OwnerType: "Organization", Repo: "app",
		InstallationID: 7, Labels: labelSet, LabelSet: labelSet}
}

// TestJobLifecycle (local world): a job is created once, claimed once, cannot be claimed again
// while its lease holds, can be resumed after the lease ran out, and never moves backwards.
func TestJobLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	s := newStore(t).WithClock(func() time.Time { return now })

	if _, created, err := s.CreateJob(ctx, testJob(1), Queued); err != nil || !created {
		t.Fatalf("CreateJob = %v, %v", created, err)
	}
	if j, created, err := s.CreateJob(ctx, testJob(1), Queued); err != nil || created || j.State != Queued {
		t.Fatalf("second CreateJob = %+v, %v, %v; want existing queued job", j, created, err)
	}
	j, err := s.Claim(ctx, "ghes.example.com", 1, time.Minute)
	if err != nil || j.State != Provisioning {
		t.Fatalf("Claim = %v, %v", j.State, err)
	}
	if _, err := s.Claim(ctx, "ghes.example.com", 1, time.Minute); !errors.Is(err, ErrConflict) {
		t.Fatalf("second Claim within the lease: err = %v, want ErrConflict", err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := s.Claim(ctx, "ghes.example.com", 1, time.Minute); err != nil {
		t.Fatalf("Claim after the lease ran out: %v", err)
	}
	if j, err = s.Transition(ctx, "ghes.example.com", 1, []JobState{Provisioning}, Launched, Change{InstanceID: "i-1", RunnerName: "spotrunner-i-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "ghes.example.com", 1, time.Minute); !errors.Is(err, ErrConflict) {
		t.Fatalf("Claim of a launched job: err = %v, want ErrConflict", err)
	}
	if _, err := s.Transition(ctx, "ghes.example.com", 1, []JobState{Queued}, Provisioning, Change{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("backwards move: err = %v, want ErrConflict", err)
	}
	want := Job{
		Host: "ghes.example.com", ID: 1, State: Launched, Owner: "acme", OwnerType: "Organization", Repo: "app",
		InstallationID: 7, Labels: []string{"self-hosted", "spotrunner/linux-x64"}, LabelSet: []string{"self-hosted", "spotrunner/linux-x64"},
		InstanceID: "i-1", RunnerName: "spotrunner-i-1",
		Timeline: map[string]time.Time{"queued": now.Add(-2 * time.Minute), "provisioning": now, "launched": now},
	}
	if diff := cmp.Diff(want, j); diff != "" {
		t.Errorf("job (-want +got):\n%s", diff)
	}
	if _, err := s.Job(ctx, "ghes.example.com", 404); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing job: err = %v", err)
	}
}

// TestConcurrentClaims (local world): eight workers claim one job at once; exactly one wins.
func TestConcurrentClaims(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	if _, _, err := s.CreateJob(ctx, testJob(2), Queued); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.Claim(ctx, "ghes.example.com", 2, time.Minute); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, ErrConflict) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d claims won, want 1", wins.Load())
	}
}

// TestPool (local world): pending jobs and idle runners of one label set are in its pool, other
// label sets and started jobs / busy runners are not.
func TestPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	set := []string{"self-hosted", "spotrunner/linux-x64"}
	for _, id := range []int64{10, 11, 12} {
		if _, _, err := s.CreateJob(ctx, testJob(id), Queued); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.CreateJob(ctx, testJob(13, "self-hosted", "spotrunner/linux-arm64"), Queued); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, "ghes.example.com", 12, []JobState{Queued}, Running, Change{}); err != nil {
		t.Fatal(err)
	}
	for _, iid := range []string{"i-a", "i-b"} {
		putRunner(t, s, Runner{InstanceID: iid, Host: "ghes.example.com", JobID: 10, LabelSet: set, Labels: set, State: Idle})
	}
	if _, err := s.UpdateRunner(ctx, "i-b", []RunnerState{Idle}, Busy, RunnerChange{BusyJobID: 12}); err != nil {
		t.Fatal(err)
	}
	jobs, runners, err := s.Pool(ctx, "ghes.example.com", set)
	if err != nil {
		t.Fatal(err)
	}
	var gotJobs []int64
	for _, j := range jobs {
		gotJobs = append(gotJobs, j.ID)
	}
	var gotRunners []string
	for _, r := range runners {
		gotRunners = append(gotRunners, r.InstanceID)
	}
	if diff := cmp.Diff([]int64{10, 11}, gotJobs); diff != "" {
		t.Errorf("pool jobs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"i-a"}, gotRunners); diff != "" {
		t.Errorf("pool runners (-want +got):\n%s", diff)
	}
}

// TestCaps (local world): twenty claimed jobs race for slots under a preset cap of 3: exactly
// three win. A winner asking again keeps its one slot; giving back from the job or releasing from
// a runner frees it exactly once however often it is called; the counters end at zero.
func TestCaps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const host = "ghes.example.com"
	for id := int64(100); id < 120; id++ {
		if _, _, err := s.CreateJob(ctx, testJob(id), Queued); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, host, id, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		wins []int64
		wg   sync.WaitGroup
	)
	for id := int64(100); id < 120; id++ {
		wg.Go(func() {
			switch err := s.AcquireSlot(ctx, host, id, "linux-x64", 10, 3, LaunchSpec{}); {
			case err == nil:
				mu.Lock()
				wins = append(wins, id)
				mu.Unlock()
			case !errors.Is(err, ErrCapReached):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(wins) != 3 {
		t.Fatalf("%d slots taken, want 3", len(wins))
	}
	counts := func() (int, int) {
		total, per, err := s.Slots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return total, per["linux-x64"]
	}
	if err := s.AcquireSlot(ctx, host, wins[0], "linux-x64", 10, 3, LaunchSpec{}); err != nil {
		t.Fatalf("a holder asking again: %v", err)
	}
	if total, per := counts(); total != 3 || per != 3 {
		t.Fatalf("counters %d/%d, want 3/3", total, per)
	}
	for range 2 {
		if err := s.GiveBackSlot(ctx, host, wins[0], "linux-x64"); err != nil {
			t.Fatal(err)
		}
	}
	j, err := s.Job(ctx, host, wins[1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordLaunch(ctx, j, Runner{InstanceID: "i-cap", Host: host, JobID: wins[1], Preset: "linux-x64"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.ReleaseSlot(ctx, "i-cap"); err != nil {
			t.Fatal(err)
		}
	}
	if total, per := counts(); total != 1 || per != 1 {
		t.Fatalf("counters after one give-back and one release: %d/%d, want 1/1", total, per)
	}
	for _, id := range []int64{200, 201} { // jobs that never raced above
		if _, _, err := s.CreateJob(ctx, testJob(id), Queued); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, host, id, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AcquireSlot(ctx, host, 200, "linux-arm64", 2, 0, LaunchSpec{}); err != nil {
		t.Fatalf("second slot under a total cap of 2: %v", err)
	}
	if err := s.AcquireSlot(ctx, host, 201, "linux-arm64", 2, 0, LaunchSpec{}); !errors.Is(err, ErrCapReached) {
		t.Fatalf("total cap of 2 exceeded: err = %v", err)
	}
}

// TestSlotsUnderConflicts (local world, with transaction conflicts injected in front of moto on a
// fifth of the writes): a burst of 200 jobs, 16 at a time, each claimed, taking a slot, recording its
// launch (the slot moves to the runner) and releasing it, once with no cap and once under a total
// cap of 10. A write that keeps conflicting fails with ErrContention and is tried again, as the
// job's message would be. A conflict is never read as a full cap (no cap: no job waits) nor as
// "already released" (the counters end at zero, no flag left). Finished items are deleted as TTL
// would: moto copies a whole table on every transaction, and the counters are what is checked.
func TestSlotsUnderConflicts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cap  int
	}{{"no cap", 0}, {"total cap 10", 10}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := world.AWS(t)
			db := world.NewDynamoDB(cfg)
			s := New(db, world.StateTable(t, cfg))
			const host, n = "ghes.example.com", 200
			db.InjectConflicts(0.2)
			var (
				wg      sync.WaitGroup
				capped  atomic.Int64
				retried atomic.Int64
				sem     = make(chan struct{}, 16)
			)
			// again runs step until it stops failing with ErrContention (a retried message).
			again := func(step func() error) error {
				for {
					err := step()
					if !errors.Is(err, ErrContention) {
						return err
					}
					retried.Add(1)
				}
			}
			for id := int64(1); id <= n; id++ {
				wg.Go(func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					iid := fmt.Sprintf("i-%017d", id)
					err := again(func() error {
						if _, _, err := s.CreateJob(ctx, testJob(id), Queued); err != nil {
							return err
						}
						_, err := s.Claim(ctx, host, id, time.Minute)
						if errors.Is(err, ErrConflict) {
							err = nil // claimed by the try before
						}
						return err
					})
					for err == nil {
						err = again(func() error {
							return s.AcquireSlot(ctx, host, id, "linux-x64", tc.cap, 0, LaunchSpec{ImageID: "ami-1"})
						})
						if !errors.Is(err, ErrCapReached) {
							break
						}
						capped.Add(1) // the job waits and tries again
						err = sleep(ctx, 5*time.Millisecond)
					}
					if err == nil {
						err = again(func() error {
							j, err := s.Job(ctx, host, id)
							if err != nil {
								return err
							}
							_, err = s.RecordLaunch(ctx, j, Runner{InstanceID: iid, Host: host, JobID: id, Preset: "linux-x64", LabelSet: j.LabelSet}, time.Minute)
							return err
						})
					}
					if err == nil {
						err = again(func() error { return s.ReleaseSlot(ctx, iid) })
					}
					if err != nil {
						t.Errorf("job %d: %v", id, err)
						return
					}
					deleteItem(t, s, jobKey(host, id), "JOB")
					deleteItem(t, s, runnerKey(iid), "RUNNER")
				})
			}
			wg.Wait()
			if db.Conflicts() == 0 {
				t.Fatal("no conflict was injected")
			}
			if tc.cap == 0 && capped.Load() != 0 {
				t.Errorf("%d times a job saw a full cap with no cap set", capped.Load())
			}
			db.InjectConflicts(0)
			total, per, err := s.Slots(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if total != 0 || per["linux-x64"] != 0 {
				t.Errorf("counters after the burst: total %d, preset %d; want 0 and 0", total, per["linux-x64"])
			}
			t.Logf("%d conflicts injected, %d steps retried after ErrContention, %d cap waits", db.Conflicts(), retried.Load(), capped.Load())
		})
	}
}

func deleteItem(t *testing.T, s *Store, pk, sk string) {
	t.Helper()
	if _, err := s.api.(*world.DynamoDB).DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: key(pk, sk)}); err != nil {
		t.Error(err)
	}
}

// putRunner writes a runner item as it stands, without the launch bookkeeping of RecordLaunch.
func putRunner(t *testing.T, s *Store, r Runner) {
	t.Helper()
	av, err := attributevalue.MarshalMap(runnerItem{PK: runnerKey(r.InstanceID), SK: "RUNNER", Pool: PoolKey(r.Host, r.LabelSet), Phase: runnerPhase(r.State), Runner: r})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: av}); err != nil {
		t.Fatal(err)
	}
}

// TestRetire (local world): a runner holding a slot retires with its slot given back in the same
// write; retiring it again is a conflict and gives back nothing; one bound to another job than
// expected is left alone; a counter already at zero (drift) does not keep a runner from retiring.
func TestRetire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const host = "ghes.example.com"
	launch := func(id int64, iid string) {
		t.Helper()
		if _, _, err := s.CreateJob(ctx, testJob(id), Queued); err != nil {
			t.Fatal(err)
		}
		j, err := s.Claim(ctx, host, id, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AcquireSlot(ctx, host, id, "linux-x64", 0, 0, LaunchSpec{}); err != nil {
			t.Fatal(err)
		}
		j.SlotHeld = true
		if _, err := s.RecordLaunch(ctx, j, Runner{InstanceID: iid, Host: host, JobID: id, Preset: "linux-x64", LabelSet: j.LabelSet}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	slots := func() int {
		n, _, err := s.Slots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	launch(1, "i-r1")
	launch(2, "i-r2")
	if _, err := s.Retire(ctx, "i-r1", []RunnerState{Idle}, 99); !errors.Is(err, ErrConflict) {
		t.Errorf("retire bound to another job: %v, want a conflict", err)
	}
	if before, err := s.Retire(ctx, "i-r1", []RunnerState{Idle, Busy}, 1); err != nil || !before.HoldsSlot {
		t.Fatalf("retire: %+v, %v", before, err)
	}
	if r, _ := s.Runner(ctx, "i-r1"); r.State != Done || r.HoldsSlot {
		t.Errorf("retired runner %+v, want done without its slot", r)
	}
	if _, err := s.Retire(ctx, "i-r1", []RunnerState{Idle, Busy}, 0); !errors.Is(err, ErrConflict) {
		t.Errorf("retire again: %v, want a conflict", err)
	}
	if n := slots(); n != 1 {
		t.Errorf("%d slots counted, want 1 (job 2's)", n)
	}
	// Drift: the counters say zero while runner 2 holds a slot.
	for _, name := range []string{"total", "preset#linux-x64"} {
		if _, err := s.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(s.table), Key: key("CAP", name),
			UpdateExpression: aws.String("SET #c = :z"), ExpressionAttributeNames: map[string]string{"#c": "count"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":z": num(0)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Retire(ctx, "i-r2", []RunnerState{Idle}, 0); !errors.Is(err, ErrCounterDrift) {
		t.Errorf("retire under drift: %v, want ErrCounterDrift", err)
	}
	if r, _ := s.Runner(ctx, "i-r2"); r.State != Done || r.HoldsSlot || slots() != 0 {
		t.Errorf("runner %+v, %d slots; want done, no slot, counters left at 0", r, slots())
	}
}

// TestPhasePaging (local world): 230 idle runners and 5 busy ones. Paging the runner#idle phase
// from the cursor Phase returns, PageSize items at a time, yields each idle runner exactly once and
// no busy one, and the last page's cursor is empty.
func TestPhasePaging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	want := map[string]bool{}
	for i := range 235 {
		iid := fmt.Sprintf("i-%017d", i)
		st := Idle
		if i < 5 {
			st = Busy
		} else {
			want["RUNNER#"+iid] = true
		}
		putRunner(t, s, Runner{InstanceID: iid, Host: "ghes.example.com", State: st})
	}
	got := map[string]bool{}
	pages, after := 0, ""
	for {
		pks, next, err := s.Phase(ctx, PhaseIdle, after)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(pks) > PageSize {
			t.Errorf("page of %d keys, over PageSize %d", len(pks), PageSize)
		}
		for _, pk := range pks {
			if got[pk] {
				t.Errorf("%s returned twice", pk)
			}
			got[pk] = true
		}
		if after = next; after == "" {
			break
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("idle runners paged (-want +got):\n%s", diff)
	}
	if pages < 3 {
		t.Errorf("%d pages for 230 items, want at least 3", pages)
	}
}
