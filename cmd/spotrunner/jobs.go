package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// jobView is one job as the CLI shows it: the job, where it ran and how long it waited.
type jobView struct {
	Host         string         `json:"host"`
	ID           int64          `json:"id"`
	Repo         string         `json:"repo"` // owner/name
	Name         string         `json:"name,omitempty"`
	Labels       []string       `json:"labels"`
	Preset       string         `json:"preset,omitempty"`
	State        state.JobState `json:"state"`
	Reason       string         `json:"reason,omitempty"`
	ReceivedAt   time.Time      `json:"receivedAt"`
	StartedAt    *time.Time     `json:"startedAt,omitempty"`
	TimeToStart  *float64       `json:"timeToStartSeconds,omitempty"`
	Attempt      int            `json:"attempt"`
	InstanceID   string         `json:"instanceId,omitempty"` // its instance: launched for it, or the one it ran on
	RunnerName   string         `json:"runnerName,omitempty"` // the runner it ran on (none before it runs)
	InstanceType string         `json:"instanceType,omitempty"`
	Capacity     string         `json:"capacity,omitempty"` // spot | on-demand
	// RanOn is the instance of the runner it ran on, when that is one of ours, and LaunchedFor
	// the job that instance was launched for when another (a runner GitHub gave to this job).
	RanOn       string `json:"ranOnInstanceId,omitempty"`
	LaunchedFor int64  `json:"ranOnRunnerLaunchedForJob,omitempty"`

	timeline map[string]time.Time
}

func (a *app) jobsCommand() *cobra.Command {
	var (
		since  time.Duration
		states []string
		repo   string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List recent jobs, newest first",
		Long: `List the jobs received recently, newest first, with their preset, state, the instance
type and capacity (spot or on-demand) they ran on, and their time to start (queued to running).

Jobs are read from the state table's "recent" index, one query per day (never a scan).`,
		Example: `  spotrunner jobs --since 6h --state queued,provisioning
  spotrunner jobs --repo acme/app -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var f state.JobFilter
			for _, s := range states {
				st := state.JobState(strings.ToLower(strings.TrimSpace(s)))
				if !slices.Contains(allStates, st) {
					return usagef("--state %q: want one of %s", s, joinStates(allStates))
				}
				f.States = append(f.States, st)
			}
			if repo != "" {
				owner, name, ok := strings.Cut(repo, "/")
				if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
					return usagef("--repo %q: want owner/name", repo)
				}
				f.Owner, f.Repo = strings.ToLower(owner), strings.ToLower(name)
			}
			if since <= 0 {
				return usagef("--since %v: want a positive duration, e.g. 1h or 30m", since)
			}
			if limit < 0 {
				return usagef("--limit %d: want 0 (no limit) or more", limit)
			}
			store, err := a.store(ctx)
			if err != nil {
				return err
			}
			p := startProgress(a.stderr, "reading jobs")
			jobs, err := store.RecentJobs(ctx, a.now().Add(-since), f, limit)
			if err != nil {
				p.stop()
				return err
			}
			p.set("reading the runners of %d jobs", len(jobs))
			listed, err := views(ctx, store, jobs)
			if err != nil {
				p.stop()
				return err
			}
			p.stop()
			if a.output == "json" {
				return writeJSON(a.stdout, listed)
			}
			return writeJobs(a.stdout, listed)
		},
	}
	cmd.Flags().DurationVar(&since, "since", time.Hour, "jobs received this long ago or later (at most 30 days are kept)")
	cmd.Flags().StringSliceVar(&states, "state", nil, "only jobs in these states (comma-separated): "+joinStates(allStates))
	cmd.Flags().StringVar(&repo, "repo", "", "only jobs of this repository (owner/name)")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many jobs (0: all)")
	cmd.AddCommand(a.jobShowCommand())
	return cmd
}

var allStates = []state.JobState{state.Queued, state.Provisioning, state.Launched, state.Running, state.Completed, state.Rejected, state.Failed, state.Cancelled}

func joinStates(s []state.JobState) string {
	out := make([]string, len(s))
	for i, st := range s {
		out[i] = string(st)
	}
	return strings.Join(out, ", ")
}

// store opens the state table.
func (a *app) store(ctx context.Context) (*state.Store, error) {
	table, err := a.tableName(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := a.awsConfig(ctx)
	if err != nil {
		return nil, err
	}
	return state.New(dynamodb.NewFromConfig(cfg), table).WithClock(a.now), nil
}

// views shows jobs with the runner each ran on (or the one launched for it): instance type and
// capacity, every runner read in one batch.
func views(ctx context.Context, store *state.Store, jobs []state.Job) ([]jobView, error) {
	out := make([]jobView, len(jobs))
	instances := make([]string, len(jobs))
	for i, j := range jobs {
		v := jobView{
			Host: j.Host, ID: j.ID, Repo: j.Owner + "/" + j.Repo, Name: j.Name, Labels: j.Labels, Preset: j.Preset,
			State: j.State, Reason: j.Reason, ReceivedAt: j.ReceivedAt, Attempt: j.Attempt,
			InstanceID: j.InstanceID, RunnerName: j.RunnerName, timeline: j.Timeline,
		}
		instances[i] = j.InstanceID
		// Before its job runs, the runner name is the one launched for it; once it ran, the one
		// GitHub gave it (in_progress).
		if t, ran := j.Timeline[string(state.Running)]; !ran {
			v.RunnerName = ""
		} else {
			v.StartedAt = &t
			if !j.ReceivedAt.IsZero() {
				s := t.Sub(j.ReceivedAt).Seconds()
				v.TimeToStart = &s
			}
			if ranOn, ours := queue.InstanceOfRunner(j.RunnerName); ours {
				v.RanOn, instances[i] = ranOn, ranOn
			}
		}
		out[i] = v
	}
	runners, err := store.Runners(ctx, instances)
	if err != nil {
		return nil, err
	}
	for i := range out {
		r, ok := runners[instances[i]]
		if !ok {
			continue
		}
		out[i].InstanceType, out[i].Capacity = r.InstanceType, r.CapacityType
		if out[i].RanOn != "" && r.JobID != out[i].ID {
			out[i].LaunchedFor = r.JobID
		}
	}
	return out, nil
}

func writeJobs(w io.Writer, views []jobView) error {
	if len(views) == 0 {
		_, err := fmt.Fprintln(w, "No jobs.")
		return err
	}
	t := newTable(w, "JOB", "REPO", "NAME", "PRESET", "STATE", "TYPE", "CAPACITY", "RECEIVED", "TO START")
	for _, v := range views {
		start := ""
		if v.TimeToStart != nil {
			start = duration(time.Duration(*v.TimeToStart * float64(time.Second)))
		}
		t.row(strconv.FormatInt(v.ID, 10), v.Repo, v.Name, v.Preset, string(v.State), v.InstanceType, v.Capacity, timestamp(v.ReceivedAt), start)
	}
	return t.flush()
}

func (a *app) jobShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show <job-id>",
		Short: "Show one job's timeline",
		Long: `Show one job's timeline (queued, provisioning, launched, running, and how it ended) with
the time between steps, the instance launched for it and the runner it actually ran on, and
the reason of a rejection, a wait or a failure.

The job id is GitHub's workflow job id (the number in the job's URL); give host/id for a job of
another GitHub host than the stack's.`,
		Example: `  spotrunner jobs show 29679449
  spotrunner jobs show ghes.example.com/1042 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			host, idText, hasHost := strings.Cut(args[0], "/")
			if !hasHost {
				host, idText = "", args[0]
			}
			id, err := strconv.ParseInt(idText, 10, 64)
			if err != nil || id <= 0 {
				return usagef("job id %q: want a number (or host/number)", args[0])
			}
			if host == "" {
				if host, err = a.githubHost(ctx); err != nil {
					return err
				}
			}
			store, err := a.store(ctx)
			if err != nil {
				return err
			}
			j, err := store.Job(ctx, strings.ToLower(host), id)
			if errors.Is(err, state.ErrNotFound) {
				return fmt.Errorf("job %d of %s: not in the state table (never received, not ours, or older than 30 days)", id, host)
			}
			if err != nil {
				return err
			}
			vs, err := views(ctx, store, []state.Job{j})
			if err != nil {
				return err
			}
			v := vs[0]
			steps := timeline(v)
			if a.output == "json" {
				return writeJSON(a.stdout, struct {
					jobView
					Timeline []step `json:"timeline"`
					Summary  string `json:"summary"`
				}{v, steps, summary(v)})
			}
			return writeJob(a.stdout, v, steps)
		},
	}
}

// step is one state of a job's timeline and the time since the step before.
type step struct {
	State        string    `json:"state"`
	At           time.Time `json:"at"`
	AfterSeconds float64   `json:"afterSeconds"`
}

// timeline orders a job's recorded states by time, from its reception. A state entered twice
// (provisioning again after a wait) is shown at its last time.
func timeline(v jobView) []step {
	var steps []step
	for st, at := range v.timeline {
		steps = append(steps, step{State: st, At: at})
	}
	// By time, and states recorded at the same instant in their lifecycle order.
	slices.SortFunc(steps, func(a, b step) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return slices.Index(allStates, state.JobState(a.State)) - slices.Index(allStates, state.JobState(b.State))
	})
	prev := v.ReceivedAt
	if len(steps) > 0 && (prev.IsZero() || steps[0].At.Before(prev)) {
		prev = steps[0].At
	}
	for i := range steps {
		steps[i].AfterSeconds = steps[i].At.Sub(prev).Seconds()
		prev = steps[i].At
	}
	return steps
}

// summary says in plain words where the job is and why.
func summary(v jobView) string {
	switch v.State {
	case state.Queued:
		if v.Reason != "" {
			return "Queued, waiting for an instance: " + strings.TrimPrefix(v.Reason, "waiting: ") + ". It is retried on its own."
		}
		return "Queued: the provisioner has not taken it yet (see spotrunner dlq list if it stays queued)."
	case state.Provisioning:
		return "Provisioning: an instance is being launched for it."
	case state.Launched:
		return fmt.Sprintf("Launched: instance %s is booting and its runner has not taken the job yet.", v.InstanceID)
	case state.Running:
		return "Running on " + ranOn(v) + "."
	case state.Completed:
		if v.Reason != "" {
			return "Completed on " + ranOn(v) + ", " + v.Reason + "."
		}
		return "Completed on " + ranOn(v) + "."
	case state.Rejected:
		return "Rejected, never launched: " + v.Reason
	case state.Failed:
		return "Failed: " + v.Reason
	case state.Cancelled:
		if v.RunnerName != "" {
			return "Cancelled on GitHub while running on " + ranOn(v) + "."
		}
		return "Cancelled on GitHub before it started."
	}
	return string(v.State)
}

// ranOn names the runner a job ran on, and says so when it was not the one launched for it.
func ranOn(v jobView) string {
	switch {
	case v.RunnerName == "":
		return "an unknown runner"
	case v.RanOn == "":
		return "runner " + v.RunnerName + " (not one of ours)"
	case v.LaunchedFor != 0:
		return fmt.Sprintf("runner %s (instance %s), which was launched for job %d: GitHub gives a job any idle runner whose labels fit", v.RunnerName, v.RanOn, v.LaunchedFor)
	default:
		return fmt.Sprintf("runner %s (instance %s)", v.RunnerName, v.RanOn)
	}
}

func writeJob(w io.Writer, v jobView, steps []step) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Job %d on %s: %s %q\n", v.ID, v.Host, v.Repo, v.Name)
	fmt.Fprintf(&b, "Labels:   %s\n", strings.Join(v.Labels, ", "))
	fmt.Fprintf(&b, "Preset:   %s\n", dash(v.Preset))
	fmt.Fprintf(&b, "State:    %s\n", v.State)
	instance := dash(v.InstanceID)
	if v.InstanceType != "" {
		instance += fmt.Sprintf(" (%s, %s)", v.InstanceType, v.Capacity)
	}
	fmt.Fprintf(&b, "Instance: %s\n", instance)
	fmt.Fprintf(&b, "Runner:   %s\n", dash(v.RunnerName))
	if v.Attempt > 0 {
		fmt.Fprintf(&b, "Attempts: %d (relaunched after its runner went to another job)\n", v.Attempt+1)
	}
	fmt.Fprintf(&b, "\n%s\n\n", summary(v))
	t := newTable(&b, "STEP", "AT", "AFTER")
	t.row("received", timestamp(v.ReceivedAt), "")
	for _, s := range steps {
		t.row(s.State, timestamp(s.At), "+"+duration(time.Duration(s.AfterSeconds*float64(time.Second))))
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
