package lambdasim

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// TimerOptions configure a Timer.
type TimerOptions struct {
	// Function is required: what the schedule invokes.
	Function Invoker
	// Every is required for Run: the period (ScheduleSpec.Every, or shorter for a test).
	Every time.Duration
	// ScheduleARN names the schedule in the event's resources; optional.
	ScheduleARN string
	// Region and AccountID fill the event; optional, defaults us-east-1 and moto's account.
	Region, AccountID string
	// Input is the schedule target's Input; optional. When set it is the whole event, as
	// EventBridge Scheduler sends it; otherwise the event is Scheduler's default notification.
	Input string
	// OnError is optional: told of each invocation that failed.
	OnError func(error)
}

// Timer is an EventBridge Scheduler schedule with a Lambda target on loopback: every period it
// invokes the function with the schedule's event. Scheduler invokes Lambda asynchronously, so a
// tick does not wait for the previous run: two runs may overlap, as in AWS. Lambda's own retries
// of an asynchronous invocation that failed are not modelled.
type Timer struct {
	o     TimerOptions
	fired atomic.Int64
	wg    sync.WaitGroup
}

// NewTimer returns a timer; Run starts it, Fire invokes once.
func NewTimer(o TimerOptions) *Timer { return &Timer{o: o} }

// Fired is how many invocations the timer started.
func (t *Timer) Fired() int64 { return t.fired.Load() }

// Event is the event of a run scheduled at at: the Input, or EventBridge Scheduler's default
// notification.
func (t *Timer) Event(at time.Time) []byte {
	if t.o.Input != "" {
		return []byte(t.o.Input)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	var resources []string
	if t.o.ScheduleARN != "" {
		resources = []string{t.o.ScheduleARN}
	}
	raw, _ := json.Marshal(map[string]any{
		"version":     "0",
		"id":          fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:]),
		"detail-type": "Scheduled Event",
		"source":      "aws.scheduler",
		"account":     cmpOr(t.o.AccountID, motoAccountID),
		"time":        at.UTC().Format(time.RFC3339),
		"region":      cmpOr(t.o.Region, defaultRegion),
		"resources":   resources,
		"detail":      "{}",
	})
	return raw
}

// Fire invokes the function once now and waits for its answer.
func (t *Timer) Fire(ctx context.Context) ([]byte, error) {
	t.fired.Add(1)
	return t.o.Function.Invoke(ctx, t.Event(time.Now()))
}

// Run fires every period until ctx ends. A run still going then is left to the function (Invoke
// returns at once; Function.Close ends it).
func (t *Timer) Run(ctx context.Context) error {
	if t.o.Every <= 0 {
		return fmt.Errorf("timer: no period")
	}
	tick := time.NewTicker(t.o.Every)
	defer tick.Stop()
	defer t.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case at := <-tick.C:
			t.fired.Add(1)
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				if _, err := t.o.Function.Invoke(ctx, t.Event(at)); err != nil && ctx.Err() == nil && t.o.OnError != nil {
					t.o.OnError(err)
				}
			}()
		}
	}
}
