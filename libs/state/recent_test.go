package state

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRecentJobs (local world): jobs received over three days, in two repositories and several
// states, one past the retention. RecentJobs must list those since a time newest first across
// day partitions, filter by state, owner and repository on the server, stop at the limit, and
// never reach past the retention.
func TestRecentJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC)
	s := newStore(t).WithClock(func() time.Time { return now })
	received := map[int64]time.Time{
		1: now.Add(-40 * 24 * time.Hour),                           // past the retention
		2: now.Add(-47 * time.Hour),                                // two days ago
		3: now.Add(-26 * time.Hour),                                // yesterday
		4: now.Add(-10 * time.Hour),                                // yesterday, 23:30
		5: now.Add(-9*time.Hour - 29*time.Minute - 59*time.Second), // today, 00:00:01
		6: now.Add(-time.Minute),
	}
	for id, at := range received {
		j := testJob(id)
		j.ReceivedAt = at
		if id%2 == 0 {
			j.Repo = "api"
		}
		if _, _, err := s.CreateJob(ctx, j, Queued); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Claim(ctx, "ghes.example.com", 5, time.Minute); err != nil {
		t.Fatal(err)
	}
	ids := func(jobs []Job) []int64 {
		var out []int64
		for _, j := range jobs {
			out = append(out, j.ID)
		}
		return out
	}
	for _, tt := range []struct {
		name  string
		since time.Time
		f     JobFilter
		limit int
		want  []int64
	}{
		{name: "last hour", since: now.Add(-time.Hour), want: []int64{6}},
		{name: "since midnight", since: now.Truncate(24 * time.Hour), want: []int64{6, 5}},
		{name: "a day across midnight", since: now.Add(-24 * time.Hour), want: []int64{6, 5, 4}},
		{name: "three days", since: now.Add(-72 * time.Hour), want: []int64{6, 5, 4, 3, 2}},
		{name: "longer than the retention", since: now.Add(-90 * 24 * time.Hour), want: []int64{6, 5, 4, 3, 2}},
		{name: "limit", since: now.Add(-72 * time.Hour), limit: 3, want: []int64{6, 5, 4}},
		{name: "repository", since: now.Add(-72 * time.Hour), f: JobFilter{Owner: "acme", Repo: "api"}, want: []int64{6, 4, 2}},
		{name: "state", since: now.Add(-72 * time.Hour), f: JobFilter{States: []JobState{Provisioning, Completed}}, want: []int64{5}},
		{name: "other owner", since: now.Add(-72 * time.Hour), f: JobFilter{Owner: "other"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			jobs, err := s.RecentJobs(ctx, tt.since, tt.f, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ids(jobs)); diff != "" {
				t.Errorf("jobs (-want +got):\n%s", diff)
			}
		})
	}
}
