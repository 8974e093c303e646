// Command demo plays a short story on the local world and prints it as it happens (make demo):
// the presets' first image builds, three jobs queued on GitHub (a plain one, one with
// cpu=4,ram=16, one with a label no preset serves), the instances launched for them, their
// runners and jobs, the instances gone, the bad label rejected with its reason, and the final
// /status document. It runs inside scripts/with-world.sh and leaves nothing running.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotrunner/spotrunner/internal/e2e"
	"github.com/spotrunner/spotrunner/libs/state"
)

// budget is how long the story may take once the stack is up.
const budget = 100 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// printer prints one line per event with the time since the start.
type printer struct {
	mu    sync.Mutex
	start time.Time
}

func (p *printer) line(source, text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Printf("%6.1fs  %-14s %s\n", time.Since(p.start).Seconds(), source, text)
}

func run(ctx context.Context) error {
	for _, tool := range []string{"bash", "curl", "jq", "aws", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing: the instances' bootstrap needs it (scripts/deps.sh installs the project's tools)", tool)
		}
	}
	p := &printer{start: time.Now()}
	p.line("demo", "building the five functions and deploying Spot Runner on the local world (moto, the GHES simulator, aws-lambda-rie)")
	s, err := e2e.Start(ctx, e2e.Options{Log: p.line, JobDuration: 3 * time.Second, BuildTime: 3 * time.Second, Instances: 1})
	if err != nil {
		return err
	}
	defer s.Close()
	p.line("demo", fmt.Sprintf("deployed as %s: webhook %s/webhook, logs in %s", s.Options.StackName, s.Deployment.URL, s.Options.WorkDir))

	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	if err := s.WaitPresetsReady(ctx); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(s.Presets)) {
		img, _ := s.State.PresetImage(ctx, name)
		p.line("amiwatcher", fmt.Sprintf("preset %s ready with %s", name, img.AMIID))
	}

	go watchInstances(ctx, s, p)
	jobs := []struct {
		name   string
		labels []string
	}{
		{"build", []string{"self-hosted", "spotrunner/linux-x64"}},
		{"test-big", []string{"self-hosted", "spotrunner/linux-x64/cpu=4,ram=16"}},
		{"gpu", []string{"self-hosted", "spotrunner/linux-x64/gpu=1"}},
	}
	ids := map[int64]string{}
	for _, j := range jobs {
		id, err := s.QueueJob(ctx, j.name, j.labels...)
		if err != nil {
			return err
		}
		ids[id] = j.name
		p.line("demo", fmt.Sprintf("queued job %d %q with runs-on: [%s]", id, j.name, strings.Join(j.labels, ", ")))
	}
	if err := watchJobs(ctx, s, p, ids); err != nil {
		return err
	}
	if err := waitNoInstances(ctx, s); err != nil {
		return err
	}
	p.line("demo", "every instance is gone")

	code, body, err := s.Status(ctx)
	if err != nil {
		return err
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("GET /status answered %d, not JSON: %s", code, body)
	}
	pretty, _ := json.MarshalIndent(doc, "", "  ")
	p.line("status", fmt.Sprintf("GET /status -> %d", code))
	fmt.Println(string(pretty))
	p.line("demo", "done; stopping everything")
	return nil
}

// watchJobs prints each job's state changes from the state table until every job is done.
func watchJobs(ctx context.Context, s *e2e.Stack, p *printer, ids map[int64]string) error {
	last := map[int64]state.JobState{}
	for {
		done := 0
		for id, name := range ids {
			j, err := s.Job(ctx, id)
			if errors.Is(err, state.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if j.State != last[id] {
				last[id] = j.State
				text := fmt.Sprintf("job %d %q %s", id, name, j.State)
				switch {
				case j.State == state.Rejected || j.State == state.Failed:
					text += ": " + j.Reason
				case j.InstanceID != "":
					text += " on " + j.InstanceID
				}
				p.line("state", text)
			}
			switch j.State {
			case state.Completed, state.Rejected, state.Failed, state.Cancelled:
				done++
			}
		}
		if done == len(ids) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jobs not done in %v: %v", budget, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// watchInstances prints each instance of the stack when EC2 launches it and when it is gone.
func watchInstances(ctx context.Context, s *e2e.Stack, p *printer) {
	seen := map[string]ec2types.InstanceStateName{}
	for ctx.Err() == nil {
		out, err := s.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
			{Name: aws.String("tag:spotrunner:deployment"), Values: []string{s.Options.StackName}},
		}})
		if err == nil {
			for _, r := range out.Reservations {
				for _, in := range r.Instances {
					id, st := aws.ToString(in.InstanceId), in.State.Name
					if seen[id] == st {
						continue
					}
					switch {
					case seen[id] == "":
						capacity := "on-demand"
						if in.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot {
							capacity = "spot"
						}
						p.line("ec2", fmt.Sprintf("launched %s: %s %s for job %s", id, in.InstanceType, capacity, e2e.InstanceTag(in, "spotrunner:job")))
					case st == ec2types.InstanceStateNameTerminated:
						p.line("ec2", "terminated "+id)
					}
					seen[id] = st
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func waitNoInstances(ctx context.Context, s *e2e.Stack) error {
	for {
		live, err := s.LiveInstances(ctx)
		if err != nil {
			return err
		}
		if len(live) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d instances still running after %v", len(live), budget)
		case <-time.After(300 * time.Millisecond):
		}
	}
}
