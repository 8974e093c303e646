// Package e2e is the whole of Spot Runner on the local world, as it is deployed: the five services
// as their real bootstrap binaries under the Lambda Runtime Interface Emulator with the template's
// environment and event sources (internal/lambdasim), AWS as moto behind the strict layer
// (internal/awsgateway), GitHub as the GHES simulator playing GitHub (internal/ghessim), and EC2's
// side of every launched instance as the real instance/bootstrap.sh (internal/instancesim).
//
// Start brings it all up the way a deployment does: the template's resources, the presets of
// presets.yaml (their SSM documents, pipelines or own AMIs, launch templates), the deploy-time
// custom resources (each preset's first build), then GitHub's webhooks to the front door. The
// end-to-end suite (this package's tests) and make demo (./demo) drive it.
package e2e

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/imagebuilder"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/spotrunner/spotrunner/internal/awsgateway"
	"github.com/spotrunner/spotrunner/internal/deploy"
	"github.com/spotrunner/spotrunner/internal/ec2world"
	"github.com/spotrunner/spotrunner/internal/ghessim"
	"github.com/spotrunner/spotrunner/internal/instancesim"
	"github.com/spotrunner/spotrunner/internal/lambdasim"
	"github.com/spotrunner/spotrunner/libs/awsconfig"
	"github.com/spotrunner/spotrunner/libs/presets"
	"github.com/spotrunner/spotrunner/libs/state"
)

// Defaults of the local deployment.
const (
	Region    = "us-east-1"
	AccountID = "123456789012"
	AppID     = 4242
	// Owner and Repo are the organization and repository the App is installed on.
	Owner, Repo = "acme", "app"
	// GitHubHost is the host ingest sees in the webhooks' X-GitHub-Enterprise-Host.
	GitHubHost = "127.0.0.1"
)

// Options configure Start. Every field is optional.
type Options struct {
	// Root is the repository root; default: found from this file's folder up to go.mod.
	Root string
	// StackName is the app stack's name; default lambdasim.DefaultStackName.
	StackName string
	// WorkDir holds logs, instance sandboxes and binaries' outputs; default a new temp dir.
	WorkDir string
	// Log gets one line per event of every part, with the part's name; default: none.
	Log func(source, line string)
	// JobDuration is how long a job runs once a runner took it; default 2 s.
	JobDuration time.Duration
	// BuildTime is how long an image build takes; default 3 s.
	BuildTime time.Duration
	// ReaperEvery runs the reaper's schedule at this period; default lambdasim.Manual (none:
	// call Reap).
	ReaperEvery time.Duration
	// Parameters override the template parameters the stack is deployed with (MaxRunners, ...).
	Parameters map[string]string
	// Instances is the number of emulators per function; default 2.
	Instances int
	// MinuteSeconds scales the bootstrap's minutes (idle limit, timeout); default 60.
	MinuteSeconds int
	// JITWaitSeconds is how long an instance waits for its JIT config; default 60 (a deployed
	// instance waits 600).
	JITWaitSeconds int
	// Tuning adds environment variables to functions, by logical id (lambdasim.DeployOptions).
	Tuning map[string]map[string]string
	// Preset changes a preset as presets.yaml declares it before the stack starts (its SSM
	// document is rewritten with the change), e.g. another spotStrategy.
	Preset func(e *presets.Entry)
	// NoFirstBuild leaves these presets without their deploy-time first build: no AMI until a
	// build is started (StartBuild).
	NoFirstBuild []string
}

// Stack is Spot Runner running on the local world.
type Stack struct {
	Options    Options
	Deployment *lambdasim.Deployment
	GitHub     *ghessim.Server
	// GitHubURL is the simulator's base URL (https, its own CA).
	GitHubURL string
	Gateway   *awsgateway.Gateway
	Instances *instancesim.Sim
	// AWS reaches the world through the gateway, as the functions do.
	AWS aws.Config
	EC2 *ec2.Client
	// Net is the VPC, subnets and security group the runners launch into.
	Net ec2world.World
	// Presets are presets.yaml's, by name; Pipelines their pipeline ARNs (none for an own AMI).
	Presets   map[string]presets.Entry
	Pipelines map[string]string
	// State reads the state table.
	State *state.Store

	github     *httptest.Server
	cfn        *httptest.Server
	cfnAnswers chan cfnAnswer
	jobID      atomic.Int64
	closeOnce  sync.Once
}

type cfnAnswer struct {
	Status, Reason, LogicalResourceID string
}

// Start builds the functions (cached), deploys the stack on the local world, and gives every
// preset its first AMI as a deployment does. The world (moto) must be running: AWS_ENDPOINT_URL
// names it (scripts/with-world.sh).
func Start(ctx context.Context, o Options) (s *Stack, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	moto := os.Getenv("AWS_ENDPOINT_URL")
	if moto == "" {
		return nil, errors.New("e2e: AWS_ENDPOINT_URL is not set: run inside scripts/with-world.sh (it starts moto on loopback)")
	}
	s = &Stack{Options: o, Presets: map[string]presets.Entry{}, Pipelines: map[string]string{}, cfnAnswers: make(chan cfnAnswer, 16)}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	log := func(source string) func(string, ...any) {
		return func(format string, args ...any) { o.Log(source, fmt.Sprintf(format, args...)) }
	}

	// The functions first: the build is the slow part on a fresh machine.
	rie, err := lambdasim.LookRIE(o.Root)
	if err != nil {
		return s, fmt.Errorf("e2e: %w (scripts/deps.sh installs it)", err)
	}
	bins, err := lambdasim.Build(ctx, o.Root, filepath.Join(o.Root, ".cache", "lambdasim", runtime.GOOS+"_"+runtime.GOARCH))
	if err != nil {
		return s, fmt.Errorf("e2e: build the functions: %w", err)
	}

	if s.Gateway, err = awsgateway.Start(ctx, awsgateway.Options{MotoURL: moto, Region: Region, AccountID: AccountID, BuildTime: o.BuildTime}); err != nil {
		return s, fmt.Errorf("e2e: %w", err)
	}
	if s.AWS, err = awsconfig.Load(ctx, awsconfig.Options{Region: Region, EndpointURL: s.Gateway.URL()}); err != nil {
		return s, err
	}
	s.EC2 = ec2.NewFromConfig(s.AWS)
	if s.Net, err = ec2world.SetupWorld(ctx, s.EC2); err != nil {
		return s, fmt.Errorf("e2e: %w", err)
	}

	raw, err := os.ReadFile(filepath.Join(o.Root, deploy.PresetsFile))
	if err != nil {
		return s, err
	}
	entries, err := presets.ParseFile(raw)
	if err != nil {
		return s, fmt.Errorf("e2e: %s: %w", deploy.PresetsFile, err)
	}
	attributes := map[string]string{}
	for _, e := range entries {
		s.Presets[e.Name] = e
		id := deploy.LogicalID(e.Name)
		lt, err := s.launchTemplate(ctx, e)
		if err != nil {
			return s, err
		}
		attributes["RunnerImage"+id+".Outputs.LaunchTemplateId"] = lt
		attributes["RunnerImage"+id+".Outputs.InstanceRoleArn"] = "arn:aws:iam::" + AccountID + ":role/" + o.StackName + "-" + e.Name + "-runner"
		if e.AMI == "" {
			// Image ARNs carry the recipe name in lower case, as Image Builder's do.
			arn := s.Gateway.AddPipeline(e.Name, strings.ToLower(o.StackName+"-"+e.Name), e.Architecture)
			s.Pipelines[e.Name] = arn
			attributes["RunnerImage"+id+".Outputs.ImagePipelineArn"] = arn
			attributes["RunnerImage"+id+".Outputs.ImageRecipeArn"] = "arn:aws:imagebuilder:" + Region + ":" + AccountID + ":image-recipe/" + strings.ToLower(o.StackName+"-"+e.Name) + "/1.0.0"
		}
	}

	key, err := secretsmanager.NewFromConfig(s.AWS).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(o.StackName + "-github-app-private-key-" + suffix()), SecretString: aws.String(string(ghessim.AppKeyPEM())),
	})
	if err != nil {
		return s, fmt.Errorf("e2e: private-key secret: %w", err)
	}

	// GitHub: the simulator needs the webhook secret the deployment generates, and the deployment
	// the simulator's URL; serve a handler now and the simulator behind it once the secret exists.
	var sim atomic.Pointer[ghessim.Server]
	s.github = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g := sim.Load(); g != nil {
			g.ServeHTTP(w, r)
			return
		}
		http.Error(w, "simulator not started", http.StatusServiceUnavailable)
	}))
	s.GitHubURL = s.github.URL
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.github.Certificate().Raw})
	if _, err := x509.ParseCertificate(s.github.Certificate().Raw); err != nil {
		return s, err
	}

	params := map[string]string{
		"GitHubServerUrl": s.GitHubURL, "GitHubAppId": fmt.Sprint(AppID), "GitHubCaBundle": string(caPEM),
		"PrivateKeySecretArn": aws.ToString(key.ARN), "RunnerSubnetIds": strings.Join(s.Net.SubnetIDs, ","),
		"RunnerSecurityGroupId": s.Net.SecurityGroupID,
	}
	for k, v := range o.Parameters {
		params[k] = v
	}
	tmpl, err := lambdasim.LoadTemplate(filepath.Join(o.Root, "template.yaml"))
	if err != nil {
		return s, err
	}
	s.Deployment, err = lambdasim.Deploy(ctx, lambdasim.DeployOptions{
		Template: tmpl, StackName: o.StackName, AWS: s.AWS, Endpoint: s.Gateway.URL(),
		Parameters: params, Attributes: attributes, SSMParameters: true,
		Binaries: bins, RIE: rie, Instances: o.Instances, LogDir: filepath.Join(o.WorkDir, "logs"),
		ScheduleEvery: o.ReaperEvery, Tuning: o.Tuning,
		OnError: func(err error) { o.Log("lambda", "event source: "+err.Error()) },
	})
	if err != nil {
		return s, fmt.Errorf("e2e: %w", err)
	}
	if o.Preset != nil {
		if err := s.rewritePresets(ctx, attributes); err != nil {
			return s, err
		}
	}
	table, _ := s.Deployment.Resolver.Ref("StateTable")
	s.State = state.New(dynamodb.NewFromConfig(s.AWS), table)

	g := ghessim.New(ghessim.Options{AppID: AppID, AppPublicKey: &ghessim.AppKey().PublicKey, Host: GitHubHost,
		WebhookSecret: []byte(s.Deployment.Resources.Secrets["WebhookSecret"].Value)})
	sim.Store(g)
	s.GitHub = g
	g.AddInstallation(7, Owner, "Organization")
	g.AddRepo(Owner, Repo, true)
	g.Play(ghessim.PlayOptions{WebhookURL: s.Deployment.URL + "/webhook", JobDuration: o.JobDuration, Log: log("github")})

	// EventBridge: Image Builder's state changes go to the watcher, as the template's rule says.
	watcher := s.Deployment.Functions["AmiWatcherFunction"]
	s.Gateway.SetImageEventHandler(func(event []byte) {
		var ev struct {
			Resources []string `json:"resources"`
			Detail    struct {
				State struct {
					Status string `json:"status"`
				} `json:"state"`
			} `json:"detail"`
		}
		_ = json.Unmarshal(event, &ev)
		o.Log("imagebuilder", fmt.Sprintf("image %s %s", strings.Join(ev.Resources, ","), ev.Detail.State.Status))
		if _, err := watcher.Invoke(context.WithoutCancel(ctx), event); err != nil {
			o.Log("amiwatcher", "event failed: "+err.Error())
		}
	})

	// The instances live as long as the stack, not as long as Start's ctx (Close ends them).
	if s.Instances, err = instancesim.Start(context.WithoutCancel(ctx), instancesim.Options{
		EC2: s.EC2, Endpoint: s.Gateway.URL(), Region: Region, Deployment: o.StackName,
		RunnerURL: s.GitHubURL, CABundle: caPEM, Bootstrap: filepath.Join(o.Root, "instance", "bootstrap.sh"),
		WorkDir: filepath.Join(o.WorkDir, "instances"), Poll: 250 * time.Millisecond,
		MinuteSeconds: o.MinuteSeconds, JITWaitSeconds: o.JITWaitSeconds, StopGrace: 2 * time.Second, Log: log("instance"),
	}); err != nil {
		return s, fmt.Errorf("e2e: %w", err)
	}

	// CloudFormation's side of the custom resources: their answers come back here.
	s.cfn = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a cfnAnswer
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPut || json.Unmarshal(body, &a) != nil {
			http.Error(w, "bad answer", http.StatusBadRequest)
			return
		}
		s.cfnAnswers <- a
	}))
	return s, s.deployCustomResources(ctx)
}

func (o *Options) defaults() error {
	if o.Root == "" {
		root, err := findRoot()
		if err != nil {
			return err
		}
		o.Root = root
	}
	if o.StackName == "" {
		o.StackName = lambdasim.DefaultStackName
	}
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "spotrunner-e2e-")
		if err != nil {
			return err
		}
		o.WorkDir = dir
	}
	if o.Log == nil {
		o.Log = func(string, string) {}
	}
	if o.JobDuration == 0 {
		o.JobDuration = 2 * time.Second
	}
	if o.BuildTime == 0 {
		o.BuildTime = 3 * time.Second
	}
	if o.JITWaitSeconds == 0 {
		o.JITWaitSeconds = 60
	}
	if o.ReaperEvery == 0 {
		o.ReaperEvery = lambdasim.Manual
	}
	return nil
}

// findRoot is the folder holding go.mod, from the working directory up.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("e2e: no go.mod above the working directory")
		}
		dir = parent
	}
}

// launchTemplate creates the preset's launch template as sam/image.yaml declares it (name
// <stack>-<preset>, IMDSv2 only with instance tags, terminate on shutdown, the runner security
// group, an encrypted gp3 root volume of the preset's size).
func (s *Stack) launchTemplate(ctx context.Context, e presets.Entry) (string, error) {
	out, err := s.EC2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(s.Options.StackName + "-" + e.Name),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{
			SecurityGroupIds:                  []string{s.Net.SecurityGroupID},
			InstanceInitiatedShutdownBehavior: ec2types.ShutdownBehaviorTerminate,
			MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{
				HttpTokens: ec2types.LaunchTemplateHttpTokensStateRequired, HttpPutResponseHopLimit: aws.Int32(1),
				HttpEndpoint:         ec2types.LaunchTemplateInstanceMetadataEndpointStateEnabled,
				InstanceMetadataTags: ec2types.LaunchTemplateInstanceMetadataTagsStateEnabled,
			},
			BlockDeviceMappings: []ec2types.LaunchTemplateBlockDeviceMappingRequest{{
				DeviceName: aws.String("/dev/sda1"),
				Ebs: &ec2types.LaunchTemplateEbsBlockDeviceRequest{
					VolumeSize: aws.Int32(int32(e.DiskSizeGB)), VolumeType: ec2types.VolumeTypeGp3, Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(true),
				},
			}},
		},
	})
	if err != nil {
		return "", fmt.Errorf("e2e: launch template of preset %s: %w", e.Name, err)
	}
	return aws.ToString(out.LaunchTemplate.LaunchTemplateId), nil
}

// deployCustomResources sends CloudFormation's Create of each preset's custom resource to the
// watcher (its first build, or its own AMI) and waits for every answer.
func (s *Stack) deployCustomResources(ctx context.Context) error {
	fn := s.Deployment.Functions["AmiWatcherFunction"]
	sent := 0
	for name, e := range s.Presets {
		if slices.Contains(s.Options.NoFirstBuild, name) {
			continue
		}
		sent++
		id := deploy.LogicalID(name)
		props := map[string]string{"ServiceToken": "arn:aws:lambda:" + Region + ":" + AccountID + ":function:" + s.Options.StackName + "-AmiWatcherFunction", "Preset": name}
		logical, typ := "FirstBuild"+id, "Custom::FirstImageBuild"
		if e.AMI == "" {
			props["PipelineArn"] = s.Pipelines[name]
			props["RecipeArn"] = "arn:aws:imagebuilder:" + Region + ":" + AccountID + ":image-recipe/" + strings.ToLower(s.Options.StackName+"-"+name) + "/1.0.0"
		} else {
			logical, typ = "OwnAmi"+id, "Custom::PresetAmi"
			props["Ami"] = e.AMI
		}
		req := map[string]any{
			"RequestType": "Create", "ResponseURL": s.cfn.URL + "/" + logical, "RequestId": newRequestID(),
			"StackId":           "arn:aws:cloudformation:" + Region + ":" + AccountID + ":stack/" + s.Options.StackName + "/" + newRequestID(),
			"LogicalResourceId": logical, "ResourceType": typ, "ResourceProperties": props,
		}
		if _, err := lambdasim.Invoke(ctx, fn, req); err != nil {
			return fmt.Errorf("e2e: custom resource %s: %w", logical, err)
		}
	}
	for range sent {
		select {
		case a := <-s.cfnAnswers:
			if a.Status != "SUCCESS" {
				return fmt.Errorf("e2e: custom resource %s answered %s: %s", a.LogicalResourceID, a.Status, a.Reason)
			}
			s.Options.Log("cloudformation", a.LogicalResourceID+" created")
		case <-time.After(30 * time.Second):
			return errors.New("e2e: a custom resource was not answered within 30 s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// rewritePresets applies Options.Preset to every preset and writes its document again.
func (s *Stack) rewritePresets(ctx context.Context, attributes map[string]string) error {
	api := ssm.NewFromConfig(s.AWS)
	for name, e := range s.Presets {
		s.Options.Preset(&e)
		s.Presets[name] = e
		doc, err := e.Document(attributes["RunnerImage"+deploy.LogicalID(name)+".Outputs.LaunchTemplateId"])
		if err != nil {
			return err
		}
		if _, err := api.PutParameter(ctx, &ssm.PutParameterInput{
			Name: aws.String(presets.ParameterPrefix(s.Options.StackName) + name), Value: aws.String(string(doc)),
			Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true),
		}); err != nil {
			return fmt.Errorf("e2e: rewrite preset %s: %w", name, err)
		}
	}
	return nil
}

// StartBuild starts a build of the preset's pipeline, as its weekly schedule or an operator does.
func (s *Stack) StartBuild(ctx context.Context, preset string) error {
	_, err := imagebuilder.NewFromConfig(s.AWS).StartImagePipelineExecution(ctx, &imagebuilder.StartImagePipelineExecutionInput{
		ImagePipelineArn: aws.String(s.Pipelines[preset]), ClientToken: aws.String(newRequestID()),
	})
	return err
}

// WaitPresetsReady waits until the named presets (default: every preset) have an AMI they are
// ready with.
func (s *Stack) WaitPresetsReady(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		for name := range s.Presets {
			names = append(names, name)
		}
	}
	for {
		ready := 0
		for _, name := range names {
			p, err := s.State.PresetImage(ctx, name)
			if err == nil && p.Status == state.ImageReady {
				ready++
			}
		}
		if ready == len(names) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("presets not ready: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// QueueJob queues a workflow job with labels on GitHub, which sends its webhook; it returns its id.
func (s *Stack) QueueJob(ctx context.Context, name string, labels ...string) (int64, error) {
	id := 1000 + s.jobID.Add(1)
	return id, s.GitHub.QueueJob(ctx, ghessim.Job{ID: id, Owner: Owner, Repo: Repo, Name: name, Labels: labels})
}

// Job reads a job's record in the state table.
func (s *Stack) Job(ctx context.Context, id int64) (state.Job, error) {
	return s.State.Job(ctx, GitHubHost, id)
}

// Status is GET /status through the front door: the status code and the document.
func (s *Stack) Status(ctx context.Context) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Deployment.URL+"/status", nil)
	if err != nil {
		return 0, nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

// Reap runs the reaper once, as its schedule does.
func (s *Stack) Reap(ctx context.Context) error {
	t := s.Deployment.Timers["ReaperFunction"]
	if t == nil {
		return errors.New("e2e: the reaper has no timer")
	}
	_, err := t.Fire(ctx)
	return err
}

// InstanceTag is the value of an instance's tag key, "" when it has none.
func InstanceTag(in ec2types.Instance, key string) string {
	for _, t := range in.Tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// LiveInstances are the stack's instances that are not terminated in EC2.
func (s *Stack) LiveInstances(ctx context.Context) ([]ec2types.Instance, error) {
	out, err := s.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:spotrunner:deployment"), Values: []string{s.Options.StackName}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}},
	}})
	if err != nil {
		return nil, err
	}
	var live []ec2types.Instance
	for _, r := range out.Reservations {
		live = append(live, r.Instances...)
	}
	return live, nil
}

// QueueDepth is the number of messages in the job queue and in its DLQ (visible and in flight).
func (s *Stack) QueueDepth(ctx context.Context) (jobs, dead int, err error) {
	api := sqs.NewFromConfig(s.AWS)
	count := func(logical string) (int, error) {
		url, _ := s.Deployment.Resolver.Ref(logical)
		out, err := api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		if err != nil {
			return 0, err
		}
		n := 0
		for _, v := range out.Attributes {
			var i int
			fmt.Sscan(v, &i)
			n += i
		}
		return n, nil
	}
	if jobs, err = count("JobQueue"); err != nil {
		return 0, 0, err
	}
	dead, err = count("JobDeadLetterQueue")
	return jobs, dead, err
}

// Close stops everything Start started; nothing is left running. Safe to call twice.
func (s *Stack) Close() {
	s.closeOnce.Do(func() {
		if s.Instances != nil {
			_ = s.Instances.Close()
		}
		if s.GitHub != nil {
			s.GitHub.Close()
		}
		if s.Deployment != nil {
			_ = s.Deployment.Close()
		}
		if s.github != nil {
			s.github.Close()
		}
		if s.cfn != nil {
			s.cfn.Close()
		}
		if s.Gateway != nil {
			_ = s.Gateway.Close()
		}
	})
}

func suffix() string { return newRequestID()[:8] }

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
