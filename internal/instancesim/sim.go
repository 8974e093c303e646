// Package instancesim plays EC2's side of a runner instance for the end-to-end suite and
// `make demo`: for each instance launched in the local world (moto) it runs the real
// instance/bootstrap.sh, and the instance ends the way a real one does.
//
// A Sim polls DescribeInstances for running instances tagged spotrunner:managed=true and
// spotrunner:deployment=<Options.Deployment>. Each new one boots, in this order:
//
//  1. its own IMDSv2 double on 127.0.0.1 (a token from PUT /latest/api/token, every GET only with
//     it): instance id, region, and the instance's EC2 tags as DescribeInstances reports them;
//  2. a sandbox folder: stubs first on PATH (runuser, id, iptables, ip6tables, docker, logger,
//     shutdown, which record their calls and touch nothing), then only the real tools the bootstrap
//     and the stand-in runner use, and a runner folder whose run.sh is the stand-in runner: it
//     connects to the GitHub simulator with its JIT config, takes its job, waits for the job to
//     end and exits (see runner.go for its protocol);
//  3. bash instance/bootstrap.sh in its own process group, with the bootstrap's test overrides
//     pointing at the double, the sandbox and moto (AWS_ENDPOINT_URL), and dummy credentials.
//
// The bootstrap reads and deletes its JIT config in moto's SSM, starts run.sh, watches it and calls
// shutdown. When the bootstrap exits, the Sim "powers the machine off" (kills what is left of the
// process group) and terminates the instance in EC2, as InstanceInitiatedShutdownBehavior=terminate
// does. An instance that leaves the running state by someone else's hand (the provisioner, the
// reaper, a spot interruption) has its bootstrap stopped as systemd would: SIGTERM to the group,
// then SIGKILL after a grace period.
//
// Faults: Interrupt is a spot interruption; Hold keeps the next instances from booting (a machine
// that never reaches its bootstrap, so its JIT config is never read).
//
// Instances reports each instance; Options.Log gets one line per event (booted, runner registered,
// job started, shut down with its reason, terminated). Close stops everything the Sim started and
// leaves the sandboxes (console logs, stub records) for debugging.
//
// Nothing here talks to anything but loopback: Start refuses an Endpoint or RunnerURL elsewhere,
// and the bootstrap's AWS CLI gets AWS_EC2_METADATA_DISABLED and the endpoint override.
package instancesim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Tags the bootstrap and the Sim look for.
const (
	managedTag    = "spotrunner:managed"
	deploymentTag = "spotrunner:deployment"
)

// EC2 is the part of the EC2 client the Sim uses: *ec2.Client, or ec2world's layer over it.
type EC2 interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, optFns ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
}

// Options configure a Sim.
type Options struct {
	// EC2 is required: where instances are found and terminated (moto).
	EC2 EC2
	// Endpoint is required: the AWS_ENDPOINT_URL the instances' AWS CLI uses (moto), on loopback.
	Endpoint string
	// Region is required: what the metadata double reports as placement/region, and AWS_REGION.
	Region string
	// Deployment is required: the stack name; only instances tagged spotrunner:deployment with it
	// boot.
	Deployment string
	// RunnerURL is required: the base URL of the GitHub simulator's runner endpoints
	// (/_sim/runners...), on loopback; http or https. The stand-in runners use it, and so does
	// the Sim to say that a runner went away with its instance (runner.go).
	RunnerURL string
	// CABundle is optional: PEM certificates trusted for RunnerURL (curl --cacert in run.sh), for
	// a simulator serving TLS with its own CA. Default: the system's roots.
	CABundle []byte
	// Bootstrap is required: the path of instance/bootstrap.sh.
	Bootstrap string
	// WorkDir is required: each instance's sandbox is WorkDir/<instance id>. Created when missing;
	// never removed (the console logs and stub records are for debugging), unless Cleanup.
	WorkDir string
	// Cleanup is optional: when true, Close removes the sandboxes it made. Default false.
	Cleanup bool
	// Poll is optional: how often DescribeInstances is asked. Default 1 s.
	Poll time.Duration
	// MinuteSeconds is optional: seconds in one of the bootstrap's minutes (idle limit, timeout),
	// so that tests can scale them down. Default 0: the bootstrap's own (60).
	MinuteSeconds int
	// JITWaitSeconds is optional: how long the bootstrap waits for its JIT config. Default 0: the
	// bootstrap's own (600).
	JITWaitSeconds int
	// StopGrace is optional: how long a bootstrap whose instance was terminated elsewhere has
	// between SIGTERM and SIGKILL. Default 5 s (systemd gives a service 90 s).
	StopGrace time.Duration
	// Log is optional: one line per event. Default: no logging.
	Log func(format string, args ...any)
}

// State is where an instance is in its life, as the Sim sees it.
type State string

// States.
const (
	// Held: running in EC2 but never booted (Hold).
	Held State = "held"
	// Booting: the bootstrap runs; its runner has not connected yet.
	Booting State = "booting"
	// Running: the runner connected to the GitHub simulator (idle or busy).
	Running State = "running"
	// Ended: the bootstrap is gone and nothing of it runs.
	Ended State = "ended"
)

// Ending says how an instance ended.
type Ending string

// Endings.
const (
	// EndedItself: the bootstrap exited (having called shutdown) and the Sim terminated the
	// instance, as InstanceInitiatedShutdownBehavior=terminate does.
	EndedItself Ending = "shutdown"
	// EndedElsewhere: someone else terminated (or stopped) the instance in EC2; the Sim stopped
	// its bootstrap.
	EndedElsewhere Ending = "terminated"
	// EndedInterrupted: Interrupt terminated the instance and stopped its bootstrap.
	EndedInterrupted Ending = "interrupted"
	// EndedClosed: Close killed the bootstrap; the instance was left alone in EC2.
	EndedClosed Ending = "closed"
)

// Instance is one instance the Sim has seen.
type Instance struct {
	ID    string
	State State
	// BootedAt is when the bootstrap started; zero for a held instance.
	BootedAt time.Time
	// PID is the bootstrap's process id, which is also its process group's; 0 when held.
	PID int
	// Runner and RunnerID are the runner the stand-in connected as, and ConnectedAt when (from
	// its output); empty until then.
	Runner      string
	RunnerID    string
	ConnectedAt time.Time
	// Job is the name of the job the runner took, and Conclusion the result it reported at the
	// job's end; empty until then.
	Job        string
	Conclusion string
	// ShutdownReason is the reason the bootstrap logged with "shutting down: "; empty when it did
	// not shut down.
	ShutdownReason string
	// Ending says how it ended; empty until it did.
	Ending Ending
	// ExitStatus is the bootstrap's exit status once ended (-1: killed by a signal).
	ExitStatus int
	// Dir is the sandbox; Console the console log (the EC2 system log) in it.
	Dir     string
	Console string
}

// Sim is a running simulator. Its methods are safe for concurrent use.
type Sim struct {
	opts   Options
	tools  string       // the sandbox's real tools, shared by every instance
	caFile string       // CABundle written out, or ""
	client *http.Client // to RunnerURL, trusting CABundle

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the poll loop and every instance's watcher

	mu        sync.Mutex
	instances map[string]*instance
	order     []string // ids in the order seen
	hold      int      // how many of the next instances to hold
	closed    bool
	pollErr   string // the last poll error logged, so a down endpoint is logged once
}

var deploymentName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`) // as the bootstrap checks it

// Start checks o, prepares the shared tools and starts polling. The Sim runs until Close, or until
// ctx is done, which stops it as Close does.
func Start(ctx context.Context, o Options) (*Sim, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("start instance simulator: %w", err)
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	bootstrap, err := filepath.Abs(o.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("start instance simulator: bootstrap %q: %w", o.Bootstrap, err)
	}
	o.Bootstrap = bootstrap
	if o.WorkDir, err = filepath.Abs(o.WorkDir); err != nil { // its folders go on PATH
		return nil, fmt.Errorf("start instance simulator: work dir: %w", err)
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("start instance simulator: %w", err)
	}
	s := &Sim{opts: o, instances: map[string]*instance{}, client: &http.Client{Timeout: 10 * time.Second}}
	if len(o.CABundle) > 0 {
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(o.CABundle) {
			return nil, errors.New("start instance simulator: option CABundle: no PEM certificate in it")
		}
		s.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	}
	if s.tools, err = writeTools(filepath.Join(o.WorkDir, "tools")); err != nil {
		return nil, fmt.Errorf("start instance simulator: %w", err)
	}
	if len(o.CABundle) > 0 {
		s.caFile = filepath.Join(o.WorkDir, "runner-ca.pem")
		if err := os.WriteFile(s.caFile, o.CABundle, 0o644); err != nil {
			return nil, fmt.Errorf("start instance simulator: write CA bundle: %w", err)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.wg.Add(1)
	go s.run(ctx)
	return s, nil
}

func (o Options) validate() error {
	var errs []error
	if o.EC2 == nil {
		errs = append(errs, errors.New("option EC2: required"))
	}
	if err := loopbackURL(o.Endpoint); err != nil {
		errs = append(errs, fmt.Errorf("option Endpoint: %w", err))
	}
	if err := loopbackURL(o.RunnerURL); err != nil {
		errs = append(errs, fmt.Errorf("option RunnerURL: %w", err))
	}
	if o.Region == "" {
		errs = append(errs, errors.New("option Region: required"))
	}
	if !deploymentName.MatchString(o.Deployment) {
		errs = append(errs, fmt.Errorf("option Deployment %q: want a stack name (a letter, then letters, digits, hyphens)", o.Deployment))
	}
	if o.Bootstrap == "" {
		errs = append(errs, errors.New("option Bootstrap: required"))
	} else if st, err := os.Stat(o.Bootstrap); err != nil || st.IsDir() {
		errs = append(errs, fmt.Errorf("option Bootstrap %q: not a file", o.Bootstrap))
	}
	if o.WorkDir == "" {
		errs = append(errs, errors.New("option WorkDir: required"))
	} else if strings.Contains(o.WorkDir, ":") {
		errs = append(errs, fmt.Errorf("option WorkDir %q: must not contain ':' (its folders go on PATH)", o.WorkDir))
	}
	if o.MinuteSeconds < 0 || o.JITWaitSeconds < 0 {
		errs = append(errs, errors.New("options MinuteSeconds and JITWaitSeconds: must not be negative"))
	}
	return errors.Join(errs...)
}

// loopbackURL accepts an http(s) URL whose host is a loopback address or localhost: the local
// world never reaches further.
func loopbackURL(raw string) error {
	if raw == "" {
		return errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: want an http or https URL", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q: not on loopback", raw)
	}
	return nil
}

// Hold keeps the next n instances that appear from booting: they stay running in EC2 and never
// read their JIT config, until someone else terminates them.
func (s *Sim) Hold(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold += n
}

// Instances returns every instance seen so far, in the order they appeared.
func (s *Sim) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Instance, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.instances[id].Instance)
	}
	return out
}

// Interrupt is a spot interruption of instanceID: it terminates the instance in EC2 and stops its
// bootstrap (SIGTERM, then SIGKILL after StopGrace), and returns once nothing of it runs.
func (s *Sim) Interrupt(ctx context.Context, instanceID string) error {
	s.mu.Lock()
	in, ok := s.instances[instanceID]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("interrupt instance %q: not seen by the simulator", instanceID)
	}
	first := in.Ending == ""
	if first {
		in.Ending = EndedInterrupted
	}
	s.mu.Unlock()
	if _, err := s.opts.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{instanceID}}); err != nil {
		if first { // it still runs: the poll must go on watching it
			s.mu.Lock()
			in.Ending = ""
			s.mu.Unlock()
		}
		return fmt.Errorf("interrupt instance %q: terminate: %w", instanceID, err)
	}
	if first {
		s.opts.Log("%s interrupted (spot): terminated in EC2, stopping its bootstrap", instanceID)
		s.stop(in)
	}
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("interrupt instance %q: waiting for its bootstrap to end: %w", instanceID, ctx.Err())
	}
}

// Close kills every bootstrap (SIGKILL to each process group), waits until nothing the Sim started
// runs, and removes the sandboxes when Options.Cleanup says so. Instances are left as they are in
// EC2. Close is idempotent.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var live []*instance
	for _, in := range s.instances {
		if in.State != Ended && in.State != Held {
			if in.Ending == "" {
				in.Ending = EndedClosed
			}
			live = append(live, in)
		}
	}
	s.mu.Unlock()
	s.cancel()
	for _, in := range live {
		s.killGroup(in)
	}
	s.wg.Wait()
	if !s.opts.Cleanup {
		return nil
	}
	var errs []error
	for _, id := range s.order {
		if err := os.RemoveAll(s.instances[id].Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(s.tools); err != nil {
		errs = append(errs, err)
	}
	if s.caFile != "" {
		if err := os.Remove(s.caFile); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close instance simulator: remove sandboxes: %w", err)
	}
	return nil
}

// run polls until Close or the caller's ctx ends; the latter closes the Sim.
func (s *Sim) run(parent context.Context) {
	defer s.wg.Done()
	tick := time.NewTicker(s.opts.Poll)
	defer tick.Stop()
	for {
		s.poll()
		select {
		case <-s.ctx.Done():
			return
		case <-parent.Done():
			// Close waits for this goroutine, so it runs on its own.
			go func() { _ = s.Close() }()
			return
		case <-tick.C:
		}
	}
}

// poll boots the instances that appeared and stops those that left the running state.
func (s *Sim) poll() {
	running, err := s.describe(s.ctx)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if err != nil {
		msg := err.Error()
		repeat := msg == s.pollErr
		s.pollErr = msg
		s.mu.Unlock()
		if !repeat && s.ctx.Err() == nil {
			s.opts.Log("describe instances: %v", err)
		}
		return
	}
	s.pollErr = ""
	type leaving struct {
		in   *instance
		held bool
	}
	var gone []leaving
	for _, in := range s.instances {
		if _, ok := running[in.ID]; !ok && in.State != Ended && in.Ending == "" {
			in.Ending = EndedElsewhere
			gone = append(gone, leaving{in, in.State == Held})
		}
	}
	var fresh []types.Instance
	for _, id := range slices.Sorted(maps.Keys(running)) {
		if _, seen := s.instances[id]; !seen {
			fresh = append(fresh, running[id])
		}
	}
	s.mu.Unlock()

	for _, g := range gone {
		if g.held {
			s.opts.Log("%s terminated in EC2 by someone else (held: it never booted)", g.in.ID)
		} else {
			s.opts.Log("%s terminated in EC2 by someone else: stopping its bootstrap", g.in.ID)
		}
		s.stop(g.in)
	}
	for _, inst := range fresh {
		s.boot(inst)
	}
}

// describe returns this deployment's running instances by id.
func (s *Sim) describe(ctx context.Context) (map[string]types.Instance, error) {
	out := map[string]types.Instance{}
	pages := ec2.NewDescribeInstancesPaginator(s.opts.EC2, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("instance-state-name"), Values: []string{string(types.InstanceStateNameRunning)}},
		{Name: aws.String("tag:" + managedTag), Values: []string{"true"}},
		{Name: aws.String("tag:" + deploymentTag), Values: []string{s.opts.Deployment}},
	}})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				// The filters are EC2's; checking again keeps a lax fake from booting what is not ours.
				if i.State != nil && i.State.Name == types.InstanceStateNameRunning &&
					tagValue(i.Tags, managedTag) == "true" && tagValue(i.Tags, deploymentTag) == s.opts.Deployment {
					out[aws.ToString(i.InstanceId)] = i
				}
			}
		}
	}
	return out, nil
}

func tagValue(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}
