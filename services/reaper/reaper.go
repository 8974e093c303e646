package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/relaunch"
	"github.com/spotrunner/spotrunner/libs/state"
)

// Fleet finds, looks up and terminates our instances (fleet.Client).
type Fleet interface {
	Find(ctx context.Context, tags map[string]string) ([]fleet.Instance, error)
	Lookup(ctx context.Context, id string) (fleet.Instance, bool, error)
	Terminate(ctx context.Context, ids ...string) error
}

// GitHub is what the reaper asks of GitHub (githubapp.App).
type GitHub interface {
	RunnerByName(ctx context.Context, t githubapp.Target, name string) (githubapp.Runner, bool, error)
	DeleteRunner(ctx context.Context, t githubapp.Target, id int64) error
	// JobStatus is a workflow job's status on GitHub: queued, in_progress, completed, ...
	JobStatus(ctx context.Context, t githubapp.Target, jobID int64) (string, error)
}

// Settings are the reaper's knobs, from its Config.
type Settings struct {
	Deployment      string        // this stack's name (spotrunner:deployment)
	StuckAfter      time.Duration // an idle runner this old has not been taken: default 10 min
	Grace           time.Duration // past a runner's deadline before the backstop: default 10 min
	OrphanAfter     time.Duration // an untracked instance this old is an orphan: default 10 min
	RegistrationLag time.Duration // GitHub's lag before an offline runner counts as dead: default 5 min
	Margin          time.Duration // stop starting work this long before the deadline: default 20 s
	DryRun          bool          // log what would be done, change nothing
}

// Reaper is the reconcile pass. Its steps, in order, each its own function (steps.go lists them).
type Reaper struct {
	jobs       *state.Store
	fleet      Fleet
	github     GitHub
	params     Params
	deliveries Deliveries
	requeue    relaunch.Publisher
	cfg        Settings
	now        func() time.Time
}

// pass is one run of the steps: its deadline, dry-run flag and the summary it logs at the end.
type pass struct {
	deadline time.Time
	margin   time.Duration
	dryRun   bool
	counts   map[string]int // "<step>.<what>" -> n
	cutOff   []string       // steps stopped by the deadline

	// The items of the phase page being walked, read in one batch before the walk (readPage);
	// each is handed out once, and only while the read is fresh (pageFresh), else read again.
	pageJobs    map[string]state.Job
	pageRunners map[string]state.Runner
	pageRead    time.Time
}

// late reports that the run must stop starting work: less than the margin is left.
func (r *pass) late() bool {
	return !r.deadline.IsZero() && time.Until(r.deadline) < r.margin
}

// count notes n things of kind what done (or skipped) by step.
func (r *pass) count(step, what string, n int) {
	if n != 0 {
		r.counts[step+"."+what] += n
	}
}

// act performs one change of step, or only logs it in dry-run mode; every change the reaper makes
// goes through here, so a dry run changes nothing.
func (r *pass) act(ctx context.Context, step, what, subject string, change func() error) error {
	log := logging.From(ctx)
	if r.dryRun {
		log.Info().Str("step", step).Str("would", what).Str("subject", subject).Msg("reaper dry run")
		r.count(step, "would "+what, 1)
		return nil
	}
	if err := change(); err != nil {
		return fmt.Errorf("%s: %s %s: %w", step, what, subject, err)
	}
	log.Info().Str("step", step).Str("did", what).Str("subject", subject).Msg("reaper")
	r.count(step, what, 1)
	return nil
}

// skip counts something step left alone on purpose, and logs why.
func (r *pass) skip(ctx context.Context, step, subject, why string) {
	logging.From(ctx).Info().Str("step", step).Str("skipped", subject).Str("why", why).Msg("reaper")
	r.count(step, "skipped", 1)
}

// Run makes one pass: every step in order; a failing step is logged and the next one still runs.
// Near the deadline the remaining work is left for the next run (every step starts from the
// table and the cloud again, so nothing is lost).
func (rp *Reaper) Run(ctx context.Context) error {
	r := &pass{margin: rp.cfg.Margin, dryRun: rp.cfg.DryRun, counts: map[string]int{}}
	if d, ok := ctx.Deadline(); ok {
		r.deadline = d
	}
	log := logging.From(ctx)
	failed := 0
	for _, s := range rp.steps() {
		if r.late() {
			r.cutOff = append(r.cutOff, s.name)
			continue
		}
		if err := s.run(ctx, r); err != nil {
			failed++
			log.Error().Err(err).Str("step", s.name).Msg("reaper step failed; the next step runs")
		}
	}
	ev := log.Info()
	keys := make([]string, 0, len(r.counts))
	for k := range r.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ev = ev.Int(k, r.counts[k])
	}
	ev.Bool("dryRun", r.dryRun).Int("failedSteps", failed).Str("cutOff", strings.Join(r.cutOff, ",")).Msg("reaper run")
	return nil // the schedule runs again in five minutes; a retry of this invocation would add nothing
}
