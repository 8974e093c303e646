package lambdasim

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestTimer: fixture is the echo Lambda recording its events, behind a timer every 100 ms. Run for
// about half a second invokes it at least three times with EventBridge Scheduler's default
// notification for the schedule; Fire invokes it once more at once; a timer with Input sends the
// Input as the whole event.
func TestTimer(t *testing.T) {
	t.Parallel()
	record := filepath.Join(t.TempDir(), "events.jsonl")
	fn := startEcho(t, FunctionOptions{Env: map[string]string{"ECHO_RECORD": record}})
	const arn = "arn:aws:scheduler:us-east-1:123456789012:schedule/default/TestStack-reaper"
	tm := NewTimer(TimerOptions{Function: fn, Every: 100 * time.Millisecond, ScheduleARN: arn})
	ctx, cancel := context.WithTimeout(context.Background(), 470*time.Millisecond)
	defer cancel()
	if err := tm.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tm.Fire(context.Background()); err != nil {
		t.Fatal(err)
	}
	type scheduled struct {
		Version    string   `json:"version"`
		ID         string   `json:"id"`
		DetailType string   `json:"detail-type"`
		Source     string   `json:"source"`
		Account    string   `json:"account"`
		Time       string   `json:"time"`
		Region     string   `json:"region"`
		Resources  []string `json:"resources"`
		Detail     string   `json:"detail"`
	}
	// Runs still in flight when Run returned finish on their own; wait for them.
	waitForRecords := func(n int) []recording[scheduled] {
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := recorded[scheduled](t, record)
			if len(got) >= n || time.Now().After(deadline) {
				return got
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	got := waitForRecords(4)
	if fired := tm.Fired(); fired < 4 || len(got) < 4 {
		t.Fatalf("fired %d, recorded %d, want at least 4 each (3 ticks and Fire)", fired, len(got))
	}
	last := got[len(got)-1].Event
	if _, err := time.Parse(time.RFC3339, last.Time); err != nil || len(last.ID) != 36 {
		t.Errorf("event time %q (%v), id %q", last.Time, err, last.ID)
	}
	last.Time, last.ID = "", ""
	want := scheduled{Version: "0", DetailType: "Scheduled Event", Source: "aws.scheduler", Account: "123456789012",
		Region: "us-east-1", Resources: []string{arn}, Detail: "{}"}
	if diff := cmp.Diff(want, last); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}

	withInput := NewTimer(TimerOptions{Function: fn, Input: `{"sweep":"all"}`})
	out, err := withInput.Fire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var reply echoReply
	if err := json.Unmarshal(out, &reply); err != nil || string(reply.Received) != `{"sweep":"all"}` {
		t.Errorf("with Input the function received %s (%v), want the Input", reply.Received, err)
	}
}
