package lambdasim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// DefaultStackName is the app stack's name in the docs and samconfig.toml.
const DefaultStackName = "SpotRunnerStack"

// Manual, as DeployOptions.ScheduleEvery, runs no schedule: fire them with Timer.Fire.
const Manual time.Duration = -1

// DeployOptions configure Deploy.
type DeployOptions struct {
	// Template is required (LoadTemplate of the module's template.yaml).
	Template *Template
	// StackName is optional, default DefaultStackName.
	StackName string
	// AWS is required: the config that reaches moto; resources are created through it.
	AWS aws.Config
	// Endpoint is optional, default AWS's BaseEndpoint: the AWS endpoint the functions use (a
	// layer in front of moto may sit there). It must be on loopback.
	Endpoint string
	// Parameters are the template parameter values (see Values.Parameters). GitHubServerUrl is
	// required and must be on loopback (the GitHub simulator): its default is github.com.
	Parameters map[string]string
	// Refs and Attributes give what resources the local world does not create resolve to (see
	// Values), e.g. "RunnerImageLinuxX64.Outputs.LaunchTemplateId"; optional, but every one the
	// functions' environments use must be there.
	Refs, Attributes map[string]string
	// SSMParameters creates the template's SSM parameters too (the presets' documents, whose
	// values need the image stacks' outputs in Attributes); optional.
	SSMParameters bool
	// Binaries and RIE are required: Build's and LookRIE's results.
	Binaries Binaries
	RIE      string
	// Instances is optional, default 2: emulators per function.
	Instances int
	// Tuning is optional: variables added to a function's environment (by logical id) on top of
	// the template's, for the timings a test cannot wait for at their defaults (BACKOFF_MAX,
	// OPERATOR_RETRY, ...). A variable the template sets cannot be overridden here.
	Tuning map[string]map[string]string
	// LogDir is optional: each function's output goes to <LogDir>/<LogicalId>.log; without it,
	// nowhere.
	LogDir string
	// ScheduleEvery is optional: 0 runs each schedule at the template's rate, a duration runs
	// them all at that period instead, Manual runs none.
	ScheduleEvery time.Duration
	// OnError is optional: told of the event sources' failures (a batch or a scheduled run that
	// failed, a receive that failed).
	OnError func(error)
}

// Deployment is the app stack running on loopback: its resources in moto, each function under
// the emulator with the template's environment, and the event sources the template gives them
// (the HTTP API's routes, SQS event sources, schedules).
type Deployment struct {
	StackName string
	Template  *Template
	// Resources are the queues, tables and secrets created (Resources.Secrets["WebhookSecret"]
	// holds the webhook secret the GitHub simulator signs with).
	Resources Resources
	// Resolver is what the template was evaluated with: Resources, then the options' values.
	Resolver Resolver
	// Functions, Pollers and Timers are by the function's logical id.
	Functions map[string]*Function
	Pollers   map[string]*SQSPoller
	Timers    map[string]*Timer
	// URL is the HTTP API's base URL on loopback: URL+"/webhook", URL+"/status".
	URL string

	server *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
	logs   []*os.File
	once   sync.Once
}

// Deploy creates the template's resources and starts its functions and their event sources. On
// an error it undoes what it started (not the resources: moto is thrown away after the run).
func Deploy(ctx context.Context, o DeployOptions) (d *Deployment, err error) {
	if o.Template == nil {
		return nil, errors.New("deploy: no template")
	}
	stack := cmpOr(o.StackName, DefaultStackName)
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = aws.ToString(o.AWS.BaseEndpoint)
	}
	if err := loopback(endpoint); err != nil {
		return nil, fmt.Errorf("deploy: AWS %w", err)
	}
	if err := loopback(o.Parameters["GitHubServerUrl"]); err != nil {
		return nil, fmt.Errorf("deploy: parameter GitHubServerUrl: %w", err)
	}
	if o.Instances <= 0 {
		o.Instances = 2
	}

	res, err := CreateResources(ctx, o.AWS, o.Template, stack)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	values := Values{StackName: stack, Region: o.AWS.Region, AccountID: res.AccountID, Parameters: o.Parameters, Refs: o.Refs, Attributes: o.Attributes}
	d = &Deployment{
		StackName: stack, Template: o.Template, Resources: res, Resolver: Chain(res, values),
		Functions: map[string]*Function{}, Pollers: map[string]*SQSPoller{}, Timers: map[string]*Timer{},
	}
	defer func() {
		if err != nil {
			d.Close()
			d = nil
		}
	}()
	if o.SSMParameters {
		if _, err := CreateParameters(ctx, o.AWS, o.Template, d.Resolver); err != nil {
			return d, fmt.Errorf("deploy: %w", err)
		}
	}

	specs, err := o.Template.Functions()
	if err != nil {
		return d, fmt.Errorf("deploy: %w", err)
	}
	for _, spec := range specs {
		fn, err := d.startFunction(ctx, o, spec, endpoint)
		if err != nil {
			return d, fmt.Errorf("deploy: %w", err)
		}
		d.Functions[spec.LogicalID] = fn
	}
	if err := d.frontDoor(o.Template); err != nil {
		return d, fmt.Errorf("deploy: %w", err)
	}
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	api := sqs.NewFromConfig(o.AWS)
	for _, spec := range specs {
		if err := d.eventSources(run, o, spec, api); err != nil {
			return d, fmt.Errorf("deploy: %w", err)
		}
	}
	return d, nil
}

func (d *Deployment) startFunction(ctx context.Context, o DeployOptions, spec FunctionSpec, endpoint string) (*Function, error) {
	bin, ok := o.Binaries[spec.Service]
	if !ok {
		return nil, fmt.Errorf("function %s: no binary for services/%s", spec.LogicalID, spec.Service)
	}
	env, err := d.Template.Environment(spec.LogicalID, d.Resolver)
	if err != nil {
		return nil, err
	}
	for k, v := range o.Tuning[spec.LogicalID] {
		if _, set := env[k]; set {
			return nil, fmt.Errorf("function %s: %s is set by the template; tuning may only add variables", spec.LogicalID, k)
		}
		env[k] = v
	}
	var log io.Writer = io.Discard
	if o.LogDir != "" {
		if err := os.MkdirAll(o.LogDir, 0o755); err != nil {
			return nil, fmt.Errorf("function %s: %w", spec.LogicalID, err)
		}
		f, err := os.OpenFile(filepath.Join(o.LogDir, spec.LogicalID+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("function %s: %w", spec.LogicalID, err)
		}
		d.logs = append(d.logs, f)
		log = f
	}
	return StartFunction(ctx, FunctionOptions{
		Name:      physicalName(d.StackName, spec.LogicalID, 64, ""),
		Bootstrap: bin,
		RIE:       o.RIE,
		Endpoint:  endpoint,
		Env:       env,
		Region:    o.AWS.Region,
		Timeout:   spec.Timeout,
		MemoryMB:  spec.MemoryMB,
		Instances: o.Instances,
		Log:       log,
	})
}

// frontDoor serves the template's routes on a free loopback port.
func (d *Deployment) frontDoor(t *Template) error {
	routes, err := t.Routes()
	if err != nil {
		return err
	}
	table := map[string]Invoker{}
	for _, r := range routes {
		table[r.Key] = d.Functions[r.Function]
	}
	door := NewFrontDoor(table)
	door.AccountID = d.Resources.AccountID
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("front door: %w", err)
	}
	d.server = &http.Server{Handler: door, ReadHeaderTimeout: 10 * time.Second}
	d.URL = "http://" + l.Addr().String()
	go func() { _ = d.server.Serve(l) }()
	return nil
}

// eventSources starts the function's SQS event source and schedule, as the template gives them.
func (d *Deployment) eventSources(ctx context.Context, o DeployOptions, spec FunctionSpec, api SQSAPI) error {
	fn := d.Functions[spec.LogicalID]
	if ev := spec.SQS; ev != nil {
		q, ok := d.Resources.Queues[ev.Queue]
		if !ok {
			return fmt.Errorf("function %s: queue %s was not created", spec.LogicalID, ev.Queue)
		}
		p, err := NewSQSPoller(api, SQSPollerOptions{
			QueueURL: q.URL, QueueARN: q.ARN, Function: fn, BatchSize: ev.BatchSize,
			ReportBatchItemFailures: ev.ReportBatchItemFailures, Pollers: o.Instances, OnError: o.OnError,
		})
		if err != nil {
			return fmt.Errorf("function %s: %w", spec.LogicalID, err)
		}
		d.Pollers[spec.LogicalID] = p
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			p.Run(ctx)
		}()
	}
	if s := spec.Schedule; s != nil {
		every := s.Every
		if o.ScheduleEvery != 0 {
			every = o.ScheduleEvery
		}
		name, err := d.Template.scheduleName(spec.LogicalID, d.Resolver)
		if err != nil {
			return fmt.Errorf("function %s: schedule name: %w", spec.LogicalID, err)
		}
		t := NewTimer(TimerOptions{
			Function: fn, Every: every, Input: s.Input, Region: o.AWS.Region, AccountID: d.Resources.AccountID, OnError: o.OnError,
			ScheduleARN: fmt.Sprintf("arn:aws:scheduler:%s:%s:schedule/default/%s", cmpOr(o.AWS.Region, defaultRegion), d.Resources.AccountID, cmpOr(name, spec.LogicalID)),
		})
		d.Timers[spec.LogicalID] = t
		if every > 0 {
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				_ = t.Run(ctx)
			}()
		}
	}
	return nil
}

// Close stops the front door and the event sources (a batch in flight is finished first), then
// the functions, and closes the logs. Resources stay in moto.
func (d *Deployment) Close() error {
	d.once.Do(func() {
		if d.server != nil {
			_ = d.server.Close()
		}
		if d.cancel != nil {
			d.cancel()
		}
		d.wg.Wait()
		for _, fn := range d.Functions {
			_ = fn.Close()
		}
		for _, f := range d.logs {
			_ = f.Close()
		}
	})
	return nil
}
