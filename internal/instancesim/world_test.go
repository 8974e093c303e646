package instancesim

import (
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/spotrunner/spotrunner/internal/ec2world"
	"github.com/spotrunner/spotrunner/internal/world"
)

// localWorld is what the tests below use of moto: EC2 (through ec2world's recording layer, which
// the Sim gets), SSM, and what a launch needs.
type localWorld struct {
	endpoint string
	ec2      *ec2.Client
	sim      *ec2world.EC2 // what the Sim uses: it records the Sim's calls
	ssm      *ssm.Client
	setup    ec2world.World
}

func newLocalWorld(t *testing.T) localWorld {
	t.Helper()
	endpoint := world.Endpoint(t) // fails under SPOTRUNNER_WORLD=1 when moto is missing
	client := ec2world.Client(t)
	return localWorld{
		endpoint: endpoint,
		ec2:      client,
		sim:      ec2world.New(client),
		ssm:      ssm.NewFromConfig(world.AWS(t)),
		setup:    ec2world.Setup(t, client),
	}
}

// launch runs one instance with the given instance tags, as a fleet launch tags it, and returns its id.
func (w localWorld) launch(t *testing.T, tags map[string]string) string {
	t.Helper()
	spec := types.TagSpecification{ResourceType: types.ResourceTypeInstance}
	for k, v := range tags {
		spec.Tags = append(spec.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	out, err := w.ec2.RunInstances(context.Background(), &ec2.RunInstancesInput{
		ImageId: aws.String(w.setup.Images["x86_64"]), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: aws.String(w.setup.SubnetIDs[0]),
		TagSpecifications: []types.TagSpecification{spec},
	})
	if err != nil {
		t.Fatalf("run instance: %v", err)
	}
	return aws.ToString(out.Instances[0].InstanceId)
}

// state is the instance's state in EC2.
func (w localWorld) state(t *testing.T, id string) string {
	t.Helper()
	out, err := w.ec2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatalf("describe %s: %v", id, err)
	}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			return string(i.State.Name)
		}
	}
	return ""
}

// putJIT writes an instance's JIT config the way the provisioner does (services/provisioner/jit.go):
// SecureString, never overwriting, tagged with the marker, the deployment and the instance's ARN.
func (w localWorld) putJIT(t *testing.T, deployment, id, value string) string {
	t.Helper()
	name := "/spotrunner/" + deployment + "/jit/" + id
	_, err := w.ssm.PutParameter(context.Background(), &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(value), Type: ssmtypes.ParameterTypeSecureString,
		Tier: ssmtypes.ParameterTierStandard, Overwrite: aws.Bool(false),
		Tags: []ssmtypes.Tag{
			{Key: aws.String(managedTag), Value: aws.String("true")},
			{Key: aws.String(deploymentTag), Value: aws.String(deployment)},
			{Key: aws.String("spotrunner:instance-arn"), Value: aws.String("arn:aws:ec2:us-east-1:123456789012:instance/" + id)},
		},
	})
	if err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
	return name
}

// param returns a parameter's decrypted value; ok is false when it does not exist.
func (w localWorld) param(t *testing.T, name string) (string, bool) {
	t.Helper()
	out, err := w.ssm.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	var notFound *ssmtypes.ParameterNotFound
	if errors.As(err, &notFound) {
		return "", false
	}
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return aws.ToString(out.Parameter.Value), true
}

func deploymentFor(t *testing.T) string { return "SimTest" + randomHex(t, 10) }

func tagsOf(deployment string) map[string]string {
	return map[string]string{managedTag: "true", deploymentTag: deployment, "spotrunner:job": "ghes.local/42", "Name": "spotrunner"}
}

// events returns the kinds of the log lines about id, in order: what Options.Log promises.
func events(lines []string, id string) []string {
	kinds := []struct{ kind, prefix string }{
		{"runner gone", id + " runner spotrunner-" + id + " went away with its instance (the GitHub simulator was told)"},
		{"booted", id + " booted: "},
		{"registered", id + " runner "},
		{"job started", id + " job "},
		{"shut down", id + " shut down: "},
		{"terminated", id + " terminated: "},
		{"terminated elsewhere", id + " terminated in EC2 by someone else"},
		{"interrupted", id + " interrupted (spot)"},
		{"ended", id + " ended: "},
	}
	var out []string
	for _, l := range lines {
		kind := "other: " + l
		for _, k := range kinds {
			if strings.HasPrefix(l, k.prefix) {
				kind = k.kind
				break
			}
		}
		if strings.Contains(l, id) {
			out = append(out, kind)
		}
	}
	return out
}

// TestSimBoots runs the Sim against moto with these fixtures per case: a fresh deployment name;
// three running instances in moto: ours (tagged spotrunner:managed=true and our deployment), one
// of another deployment and one of ours without the managed marker, the first two with a JIT config
// in SSM as the provisioner writes it (ours unless the case says it never comes); and the stand-in
// runner server (TLS or plain HTTP) with the case's behaviour.
//
// What must happen to each: ours boots, its bootstrap reads and deletes its parameter, run.sh
// connects with exactly that config (marked disableUpdate by the bootstrap) and does what the
// server allows; the bootstrap shuts down with the case's reason, nothing of it keeps running, and
// the Sim terminates it in moto; the log tells booted, registered, job started, shut down,
// terminated, in that order (less what the case skips). The other two are never booted and stay
// running, the other deployment's parameter untouched.
func TestSimBoots(t *testing.T) {
	t.Parallel()
	w := newLocalWorld(t)
	tests := []struct {
		name     string
		tls      bool
		job      string // what the server hands the runner; "" with refuse
		refuse   bool
		noConfig bool // the provisioner never writes ours
		jitWait  int
		wantExit int
		wantJob  string
		// wantConclusion is the job's result as run.sh reported it.
		wantConclusion string
		wantState      string // of ours in the Sim
		// wantReason is the shutdown reason; {param} is our parameter's name.
		wantReason string
		wantEvents []string
	}{
		{
			name: "runner takes its job", tls: true, job: "build",
			wantJob: "build", wantConclusion: "Succeeded",
			wantReason: "the runner exited with status 0",
			wantEvents: []string{"booted", "registered", "job started", "shut down", "terminated"},
		},
		{
			name: "runner refused", refuse: true,
			wantReason: "the runner exited with status 1",
			wantEvents: []string{"booted", "shut down", "terminated"},
		},
		{
			name: "config never written", tls: true, job: "build", noConfig: true, jitWait: 2,
			wantExit:   1,
			wantReason: "JIT config {param} did not appear within 2 s",
			wantEvents: []string{"booted", "shut down", "terminated"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			deployment := deploymentFor(t)
			rs := newRunnerServer(tc.job, "Succeeded")
			rs.Refuse = tc.refuse
			var srv *httptest.Server
			var ca []byte
			if tc.tls {
				srv = httptest.NewTLSServer(rs.handler())
				ca = caPEM(srv)
			} else {
				srv = httptest.NewServer(rs.handler())
			}
			t.Cleanup(srv.Close)

			ours := w.launch(t, tagsOf(deployment))
			other := w.launch(t, tagsOf(deploymentFor(t)))
			unmanaged := tagsOf(deployment)
			delete(unmanaged, managedTag)
			byHand := w.launch(t, unmanaged)
			jit := newJITConfig(t, "spotrunner-"+ours)
			param := "/spotrunner/" + deployment + "/jit/" + ours
			if !tc.noConfig {
				w.putJIT(t, deployment, ours, jit.value)
			}
			otherJIT := newJITConfig(t, "spotrunner-"+other)
			otherParam := w.putJIT(t, deployment, other, otherJIT.value)

			var logs syncLog
			jitWait := tc.jitWait
			if jitWait == 0 {
				jitWait = 30
			}
			s, err := Start(context.Background(), Options{
				EC2: w.sim, Endpoint: w.endpoint, Region: "us-east-1", Deployment: deployment,
				RunnerURL: srv.URL, CABundle: ca, Bootstrap: bootstrapPath(), WorkDir: t.TempDir(),
				Poll: 200 * time.Millisecond, MinuteSeconds: 1, JITWaitSeconds: jitWait, Log: logs.add,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()

			ended := waitFor(60*time.Second, func() bool {
				got := s.Instances()
				return len(got) > 0 && got[0].State == Ended
			})
			got := s.Instances()
			if !ended {
				t.Fatalf("ours did not end within a minute: %+v\nlog:\n%s", got, strings.Join(logs.lines(), "\n"))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			in := got[0]
			if in.ConnectedAt.After(in.BootedAt) {
				t.Logf("boot to runner connected: %.2f s", in.ConnectedAt.Sub(in.BootedAt).Seconds())
			}
			for _, pid := range groupMembers(in.PID) {
				t.Errorf("process %d of the bootstrap's group still runs", pid)
			}

			want := []Instance{{
				ID: ours, State: Ended, Ending: EndedItself, ExitStatus: tc.wantExit, Job: tc.wantJob, Conclusion: tc.wantConclusion,
				ShutdownReason: strings.ReplaceAll(tc.wantReason, "{param}", param),
				Dir:            in.Dir, Console: in.Console,
			}}
			if tc.job != "" && !tc.noConfig {
				want[0].Runner, want[0].RunnerID = jit.name, "1"
			}
			ignore := cmpopts.IgnoreFields(Instance{}, "BootedAt", "PID", "ConnectedAt")
			if diff := cmp.Diff(want, got, ignore); diff != "" {
				t.Errorf("instances (-want +got):\n%s\nconsole:\n%s", diff, readFile(t, in.Console))
			}
			if diff := cmp.Diff(tc.wantEvents, events(logs.lines(), ours)); diff != "" {
				t.Errorf("log events of ours (-want +got):\n%s\nlog:\n%s", diff, strings.Join(logs.lines(), "\n"))
			}

			var wantPosted []map[string]any
			if !tc.noConfig {
				wantPosted = append(wantPosted, jit.withoutUpdate(t))
			}
			var gotPosted []map[string]any
			for _, c := range rs.posted() {
				gotPosted = append(gotPosted, decodeJIT(t, c))
			}
			if diff := cmp.Diff(wantPosted, gotPosted); diff != "" {
				t.Errorf("configs run.sh connected with, decoded (-want +got):\n%s", diff)
			}
			// The JIT config never lands in a file of the sandbox: neither as delivered nor its key.
			key := base64.StdEncoding.EncodeToString([]byte(jit.files[".credentials_rsaparams"]))
			err = filepath.WalkDir(in.Dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				if b := readFile(t, p); strings.Contains(b, jit.value) || strings.Contains(b, key) {
					t.Errorf("%s holds the JIT config", p)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := w.param(t, param); ok {
				t.Errorf("our parameter %s is still there", param)
			}
			if v, ok := w.param(t, otherParam); !ok || v != otherJIT.value {
				t.Errorf("the other deployment's parameter %s was touched (exists=%v)", otherParam, ok)
			}
			if st := w.state(t, ours); st != "terminated" && st != "shutting-down" {
				t.Errorf("ours is %s in EC2, want terminated", st)
			}
			for _, id := range []string{other, byHand} {
				if st := w.state(t, id); st != "running" {
					t.Errorf("%s is %s in EC2, want running (not ours)", id, st)
				}
			}
		})
	}
}

// TestSimStopsTerminated runs two instances of one deployment in moto, each with its JIT config,
// against a stand-in runner server that hands out a job and never ends it. Once both jobs run, the
// test terminates the first in moto itself (the reaper, the provisioner) and interrupts the second
// with Interrupt (a spot interruption). What must happen to each: its bootstrap is stopped (SIGTERM,
// so it logs its reason and calls shutdown) and nothing of its process group keeps running; the
// first is not terminated again by the Sim, the second is terminated in moto by Interrupt.
func TestSimStopsTerminated(t *testing.T) {
	t.Parallel()
	w := newLocalWorld(t)
	deployment := deploymentFor(t)
	rs := newRunnerServer("build", "")
	srv := httptest.NewServer(rs.handler())
	t.Cleanup(srv.Close)
	reaped, interrupted := w.launch(t, tagsOf(deployment)), w.launch(t, tagsOf(deployment))
	for _, id := range []string{reaped, interrupted} {
		w.putJIT(t, deployment, id, newJITConfig(t, "spotrunner-"+id).value)
	}

	var logs syncLog
	s, err := Start(context.Background(), Options{
		EC2: w.sim, Endpoint: w.endpoint, Region: "us-east-1", Deployment: deployment,
		RunnerURL: srv.URL, Bootstrap: bootstrapPath(), WorkDir: t.TempDir(),
		Poll: 200 * time.Millisecond, MinuteSeconds: 1, JITWaitSeconds: 30, Log: logs.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	busy := waitFor(60*time.Second, func() bool {
		got := s.Instances()
		return len(got) == 2 && got[0].Job != "" && got[1].Job != ""
	})
	if !busy {
		t.Fatalf("jobs did not start within a minute: %+v\nlog:\n%s", s.Instances(), strings.Join(logs.lines(), "\n"))
	}

	if _, err := w.ec2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{reaped}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Interrupt(ctx, interrupted); err != nil {
		t.Fatal(err)
	}
	ended := waitFor(30*time.Second, func() bool {
		got := s.Instances()
		return got[0].State == Ended && got[1].State == Ended
	})
	if !ended {
		t.Fatalf("instances did not end: %+v", s.Instances())
	}

	wantEnding := map[string]Ending{reaped: EndedElsewhere, interrupted: EndedInterrupted}
	wantEvents := map[string][]string{
		reaped:      {"booted", "registered", "job started", "terminated elsewhere", "shut down", "runner gone", "ended"},
		interrupted: {"booted", "registered", "job started", "interrupted", "shut down", "runner gone", "ended"},
	}
	for _, in := range s.Instances() {
		if in.Ending != wantEnding[in.ID] {
			t.Errorf("%s ended %q, want %q", in.ID, in.Ending, wantEnding[in.ID])
		}
		if want := "bootstrap stopped unexpectedly (exit status 143)"; in.ShutdownReason != want {
			t.Errorf("%s shut down with %q, want %q", in.ID, in.ShutdownReason, want)
		}
		for _, pid := range groupMembers(in.PID) {
			t.Errorf("%s: process %d of the bootstrap's group still runs", in.ID, pid)
		}
		if st := w.state(t, in.ID); st != "terminated" && st != "shutting-down" {
			t.Errorf("%s is %s in EC2, want terminated", in.ID, st)
		}
		if diff := cmp.Diff(wantEvents[in.ID], events(logs.lines(), in.ID)); diff != "" {
			t.Errorf("log events of %s (-want +got):\n%s", in.ID, diff)
		}
	}
	for _, id := range []string{reaped, interrupted} {
		if want := "DELETE /_sim/runners/spotrunner-" + id; !contains(rs.seen(), want) {
			t.Errorf("the runner server never got %s; it got %v", want, rs.seen())
		}
	}
	var terminations int
	for _, c := range w.sim.Calls() {
		if c == ec2world.TerminateInstances {
			terminations++
		}
	}
	if terminations != 1 {
		t.Errorf("the Sim called TerminateInstances %d times, want once (Interrupt)", terminations)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, in := range s.Instances() {
		if regexp.MustCompile(`runner: .*Running job: build`).FindString(readFile(t, in.Console)) == "" {
			t.Errorf("%s console lacks the runner's job line", in.ID)
		}
	}
}
