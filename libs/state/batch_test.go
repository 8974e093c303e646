package state

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestBatchReads (local world, whose DynamoDB answers half of each batch and leaves the rest
// unprocessed): 230 jobs and 5 runners, read back with one Jobs and one Runners call across
// several 100-key requests and their unprocessed keys, repeated keys read once, missing ones
// absent from the result.
func TestBatchReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	var keys []JobKey
	for id := int64(1); id <= 230; id++ {
		if _, _, err := s.CreateJob(ctx, testJob(id), Queued); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, JobKey{"ghes.example.com", id})
	}
	keys = append(keys, keys[0], JobKey{"ghes.example.com", 999})
	jobs, err := s.Jobs(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 230 {
		t.Fatalf("Jobs: %d jobs, want 230", len(jobs))
	}
	for id := int64(1); id <= 230; id++ {
		if j := jobs[JobKey{"ghes.example.com", id}]; j.ID != id || j.State != Queued {
			t.Fatalf("job %d: %+v", id, j)
		}
	}

	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("i-%02d", i)
		j, err := s.Claim(ctx, "ghes.example.com", int64(i+1), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordLaunch(ctx, j, Runner{InstanceID: id, Host: j.Host, JobID: j.ID, Owner: "acme", Preset: "linux-x64",
			Labels: j.Labels, LabelSet: j.LabelSet, State: Idle, RunnerName: "spotrunner-" + id, InstanceType: "m5.large", CapacityType: "spot"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	runners, err := s.Runners(ctx, append(ids, "i-missing", "", ids[2]))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for id, r := range runners {
		if r.InstanceID != id || r.State != Idle {
			t.Errorf("runner %s: %+v", id, r)
		}
		got = append(got, id)
	}
	sort.Strings(got)
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("runners (-want +got):\n%s", diff)
	}
	pkJobs, pkRunners, err := s.ItemsOf(ctx, []string{jobKey("ghes.example.com", 7), runnerKey("i-03"), jobKey("ghes.example.com", 999), runnerKey("i-03"), runnerKey("i-missing")})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkJobs) != 1 || pkJobs[jobKey("ghes.example.com", 7)].ID != 7 || len(pkRunners) != 1 || pkRunners[runnerKey("i-03")].JobID != 4 {
		t.Errorf("ItemsOf: jobs %v, runners %v; want job 7 and runner i-03 (launched for job 4)", pkJobs, pkRunners)
	}
}
