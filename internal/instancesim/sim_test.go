package instancesim

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// fakeEC2 is a stateful EC2 for the tests that need no moto: instances with a state and tags;
// DescribeInstances applies the instance-state-name and tag: filters; TerminateInstances
// terminates and records.
type fakeEC2 struct {
	mu         sync.Mutex
	instances  map[string]*types.Instance
	terminated []string // TerminateInstances calls, in order
}

func (f *fakeEC2) add(id, state string, tags map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst := &types.Instance{InstanceId: aws.String(id), State: &types.InstanceState{Name: types.InstanceStateName(state)}}
	for k, v := range tags {
		inst.Tags = append(inst.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	if f.instances == nil {
		f.instances = map[string]*types.Instance{}
	}
	f.instances[id] = inst
}

func (f *fakeEC2) setState(id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.instances[id].State.Name = types.InstanceStateName(state)
}

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var r types.Reservation
next:
	for _, inst := range f.instances {
		for _, flt := range in.Filters {
			name := aws.ToString(flt.Name)
			var have string
			if k, ok := strings.CutPrefix(name, "tag:"); ok {
				have = tagValue(inst.Tags, k)
			} else if name == "instance-state-name" {
				have = string(inst.State.Name)
			}
			if !contains(flt.Values, have) {
				continue next
			}
		}
		r.Instances = append(r.Instances, *inst)
	}
	return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{r}}, nil
}

func (f *fakeEC2) TerminateInstances(_ context.Context, in *ec2.TerminateInstancesInput, _ ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range in.InstanceIds {
		f.terminated = append(f.terminated, id)
		if inst, ok := f.instances[id]; ok {
			inst.State.Name = types.InstanceStateNameTerminated
		}
	}
	return &ec2.TerminateInstancesOutput{}, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func bootstrapPath() string { return filepath.Join(world.Root(), "instance", "bootstrap.sh") }

// validOptions are options Start accepts, around ec2.
func validOptions(t *testing.T, api EC2) Options {
	return Options{
		EC2: api, Endpoint: "http://127.0.0.1:1", Region: "us-east-1", Deployment: "SpotRunnerStack",
		RunnerURL: "https://localhost:2", Bootstrap: bootstrapPath(), WorkDir: t.TempDir(), Poll: 20 * time.Millisecond,
	}
}

// TestStartRefuses: Start refuses options it cannot run with, naming the field, and above all
// any endpoint off loopback: the simulator never sends anything elsewhere.
func TestStartRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no EC2", func(o *Options) { o.EC2 = nil }, "option EC2: required"},
		{"AWS endpoint on the network", func(o *Options) { o.Endpoint = "http://10.0.0.1:5000" }, `option Endpoint: "http://10.0.0.1:5000": not on loopback`},
		{"real AWS", func(o *Options) { o.Endpoint = "https://ssm.us-east-1.amazonaws.com" }, "not on loopback"},
		{"runner URL on the network", func(o *Options) { o.RunnerURL = "https://ghes.example.com" }, `option RunnerURL: "https://ghes.example.com": not on loopback`},
		{"runner URL not http", func(o *Options) { o.RunnerURL = "ftp://127.0.0.1/" }, "want an http or https URL"},
		{"no region", func(o *Options) { o.Region = "" }, "option Region: required"},
		{"bad deployment", func(o *Options) { o.Deployment = "my stack" }, `option Deployment "my stack"`},
		{"no bootstrap", func(o *Options) { o.Bootstrap = filepath.Join(t.TempDir(), "nope.sh") }, "not a file"},
		{"no work dir", func(o *Options) { o.WorkDir = "" }, "option WorkDir: required"},
		{"negative minute", func(o *Options) { o.MinuteSeconds = -1 }, "must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := validOptions(t, &fakeEC2{})
			tc.change(&o)
			s, err := Start(context.Background(), o)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Start accepted the options, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestHeld needs no moto: a fake EC2 with three running instances, one of this deployment, one of
// another, one not managed. With Hold(1), the Sim holds ours (never boots it: no bootstrap, no
// sandbox) and ignores the others; when ours is terminated in EC2 by someone else it ends, and the
// Sim never terminates anything itself.
func TestHeld(t *testing.T) {
	t.Parallel()
	testTools(t)
	api := &fakeEC2{}
	api.add("i-ours", "running", map[string]string{managedTag: "true", deploymentTag: "SpotRunnerStack"})
	api.add("i-other", "running", map[string]string{managedTag: "true", deploymentTag: "OtherStack"})
	api.add("i-hand", "running", map[string]string{deploymentTag: "SpotRunnerStack"})
	var logs syncLog
	o := validOptions(t, api)
	o.Log = logs.add
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Hold applies to instances that appear after it: ours is pending until then.
	api.setState("i-ours", "pending")
	s, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Hold(1)
	api.setState("i-ours", "running")

	if !waitFor(5*time.Second, func() bool { return len(s.Instances()) == 1 }) {
		t.Fatalf("instances %v, want i-ours held", s.Instances())
	}
	time.Sleep(5 * o.Poll) // a few more polls: still held, nothing else seen
	want := []Instance{{ID: "i-ours", State: Held, Dir: filepath.Join(o.WorkDir, "i-ours"), Console: filepath.Join(o.WorkDir, "i-ours", "console")}}
	if diff := cmp.Diff(want, s.Instances()); diff != "" {
		t.Errorf("instances (-want +got):\n%s", diff)
	}

	api.setState("i-ours", "terminated")
	if !waitFor(5*time.Second, func() bool { return s.Instances()[0].State == Ended }) {
		t.Fatalf("held instance did not end after its termination: %v", s.Instances())
	}
	want[0].State, want[0].Ending = Ended, EndedElsewhere
	if diff := cmp.Diff(want, s.Instances()); diff != "" {
		t.Errorf("instances (-want +got):\n%s", diff)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(api.terminated) != 0 {
		t.Errorf("the Sim terminated %v, want nothing", api.terminated)
	}
	if diff := cmp.Diff([]string{
		"i-ours held: not booting",
		"i-ours terminated in EC2 by someone else (held: it never booted)",
	}, logs.lines()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

// syncLog collects Options.Log lines.
type syncLog struct {
	mu      sync.Mutex
	entries []string
}

func (l *syncLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, fmt.Sprintf(format, args...))
}

func (l *syncLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.entries...)
}
