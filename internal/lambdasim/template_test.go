package lambdasim

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

func loadTemplate(t *testing.T) *Template {
	t.Helper()
	tp, err := LoadTemplate(filepath.Join(world.Root(), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// fakeDeployment resolves everything template.yaml's functions need, with values that show where
// they came from.
func fakeDeployment() Values {
	return Values{
		StackName: "TestStack",
		Region:    "eu-west-1",
		AccountID: "111122223333",
		Parameters: map[string]string{
			"GitHubServerUrl": "http://127.0.0.1:8443", "GitHubAppId": "42", "PrivateKeySecretArn": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:key",
			"RunnerSubnetIds": "subnet-1,subnet-2", "RunnerSecurityGroupId": "sg-1", "AllowedOwners": "octo-org,other",
		},
		Refs: map[string]string{"JobQueue": "http://127.0.0.1:5000/q.fifo", "StateTable": "TestStack-StateTable-X", "WebhookSecret": "arn:webhook"},
		Attributes: map[string]string{
			"RunnerImageLinuxX64.Outputs.ImagePipelineArn":   "arn:pipeline/x64",
			"RunnerImageLinuxArm64.Outputs.ImagePipelineArn": "arn:pipeline/arm64",
		},
	}
}

// TestFunctions: fixture is template.yaml. Its five functions are read with their services, the
// Globals' memory, their own timeouts, the provisioner's SQS event (batch size 10, partial batch
// responses) and the reaper's five-minute schedule; the HTTP API routes go to ingest and status.
func TestFunctions(t *testing.T) {
	t.Parallel()
	tp := loadTemplate(t)
	fns, err := tp.Functions()
	if err != nil {
		t.Fatal(err)
	}
	want := []FunctionSpec{
		{LogicalID: "IngestFunction", Service: "ingest", Timeout: 8 * time.Second, MemoryMB: 256},
		{LogicalID: "ProvisionerFunction", Service: "provisioner", Timeout: 60 * time.Second, MemoryMB: 256,
			SQS: &SQSEventSpec{Queue: "JobQueue", BatchSize: 10, ReportBatchItemFailures: true}},
		{LogicalID: "AmiWatcherFunction", Service: "amiwatcher", Timeout: 60 * time.Second, MemoryMB: 256},
		{LogicalID: "ReaperFunction", Service: "reaper", Timeout: 240 * time.Second, MemoryMB: 256,
			Schedule: &ScheduleSpec{Expression: "rate(5 minutes)", Every: 5 * time.Minute}},
		{LogicalID: "StatusFunction", Service: "status", Timeout: 5 * time.Second, MemoryMB: 256},
	}
	if diff := cmp.Diff(want, fns); diff != "" {
		t.Errorf("functions (-want +got):\n%s", diff)
	}
	if name, err := tp.scheduleName("ReaperFunction", Values{StackName: "S"}); err != nil || name != "S-reaper" {
		t.Errorf("reaper schedule name %q (%v), want S-reaper", name, err)
	}
	routes, err := tp.Routes()
	if err != nil {
		t.Fatal(err)
	}
	wantRoutes := []Route{{Key: "POST /webhook", Function: "IngestFunction"}, {Key: "GET /status", Function: "StatusFunction"}}
	if diff := cmp.Diff(wantRoutes, routes); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
}

// TestEnvironments: fixture is template.yaml and fakeDeployment. Every function's environment
// resolves; the variables below show each kind of intrinsic function evaluated (a resource's
// Ref, a parameter given, a default, a list joined, an empty list joined, a pseudo parameter,
// !Sub of nested stack outputs) and the Globals' LOG_LEVEL merged into each.
func TestEnvironments(t *testing.T) {
	t.Parallel()
	tp := loadTemplate(t)
	fns, err := tp.Functions()
	if err != nil {
		t.Fatal(err)
	}
	envs := map[string]map[string]string{}
	for _, f := range fns {
		env, err := tp.Environment(f.LogicalID, fakeDeployment())
		if err != nil {
			t.Fatalf("%s: %v", f.LogicalID, err)
		}
		if env["LOG_LEVEL"] != "info" {
			t.Errorf("%s: LOG_LEVEL = %q, want the Globals' default info", f.LogicalID, env["LOG_LEVEL"])
		}
		envs[f.LogicalID] = env
	}
	for _, c := range []struct{ fn, name, want string }{
		{"IngestFunction", "QUEUE_URL", "http://127.0.0.1:5000/q.fifo"},
		{"IngestFunction", "WEBHOOK_SECRET_ARN", "arn:webhook"},
		{"IngestFunction", "ALLOWED_OWNERS", "octo-org,other"},
		{"IngestFunction", "ALLOWED_REPOS", ""},
		{"IngestFunction", "ALLOW_PUBLIC_REPOS", "auto"},
		{"ProvisionerFunction", "GITHUB_APP_ID", "42"},
		{"ProvisionerFunction", "SUBNET_IDS", "subnet-1,subnet-2"},
		{"ProvisionerFunction", "DEPLOYMENT", "TestStack"},
		{"ProvisionerFunction", "ACCOUNT_ID", "111122223333"},
		{"ProvisionerFunction", "AWS_PARTITION", "aws"},
		{"ProvisionerFunction", "MAX_RUNNERS", "0"},
		{"ProvisionerFunction", "TABLE_NAME", "TestStack-StateTable-X"},
		{"AmiWatcherFunction", "PIPELINES", "linux-x64=arn:pipeline/x64,linux-arm64=arn:pipeline/arm64"},
		{"ReaperFunction", "DRY_RUN", "false"},
		{"StatusFunction", "STATUS_ALLOWED_CIDRS", ""},
		{"StatusFunction", "GITHUB_SERVER_URL", "http://127.0.0.1:8443"},
	} {
		got, ok := envs[c.fn][c.name]
		if !ok || got != c.want {
			t.Errorf("%s %s = %q (set %v), want %q", c.fn, c.name, got, ok, c.want)
		}
	}
}

// TestUnresolved: fixture is template.yaml and fakeDeployment with one value taken away each
// time. The environment then fails naming the template line, the function, the variable and
// what is missing (a parameter without a default, an SSM-typed parameter, a resource, a nested
// stack's output).
func TestUnresolved(t *testing.T) {
	t.Parallel()
	tp := loadTemplate(t)
	for _, c := range []struct {
		name   string
		fn     string
		remove func(*Values)
		want   []string
	}{
		{"parameter without default", "ProvisionerFunction", func(v *Values) { delete(v.Parameters, "GitHubAppId") },
			[]string{"GITHUB_APP_ID", "!Ref GitHubAppId", "no value given and no default"}},
		{"SSM parameter", "StatusFunction", func(v *Values) { delete(v.Parameters, "PrivateKeySecretArn") },
			[]string{"PRIVATE_KEY_SECRET_ARN", "AWS::SSM::Parameter::Value<String>", "/spotrunner/SpotRunnerFoundationStack/PrivateKeySecretArn"}},
		{"resource", "IngestFunction", func(v *Values) { delete(v.Refs, "JobQueue") },
			[]string{"QUEUE_URL", "!Ref JobQueue", "AWS::SQS::Queue", "not created"}},
		{"nested stack output", "AmiWatcherFunction", func(v *Values) { delete(v.Attributes, "RunnerImageLinuxArm64.Outputs.ImagePipelineArn") },
			[]string{"PIPELINES", "!GetAtt RunnerImageLinuxArm64.Outputs.ImagePipelineArn", "AWS::Serverless::Application"}},
	} {
		v := fakeDeployment()
		c.remove(&v)
		_, err := tp.Environment(c.fn, v)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !regexp.MustCompile(`template\.yaml:\d+: `).MatchString(err.Error()) {
			t.Errorf("%s: %q names no template line", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", c.name, err, w)
			}
		}
	}
}

// TestIntrinsics: fixture is a small inline template per case; the variable V of function F is
// evaluated with a resolver that knows parameter P ("a,b" for the list L), resource R
// (physical id "r-1", Arn "arn:r") and the stack name.
func TestIntrinsics(t *testing.T) {
	t.Parallel()
	r := Values{StackName: "S", Parameters: map[string]string{"P": "p", "L": "a,b"}, Refs: map[string]string{"R": "r-1"}, Attributes: map[string]string{"R.Arn": "arn:r"}}
	for _, c := range []struct {
		name, value string
		want        string // "" with wantErr
		wantErr     string
		unset       bool // V is left out (AWS::NoValue)
	}{
		{name: "plain", value: "x", want: "x"},
		{name: "ref parameter", value: "!Ref P", want: "p"},
		{name: "ref default", value: "!Ref D", want: "dflt"},
		{name: "ref resource", value: "!Ref R", want: "r-1"},
		{name: "getatt dotted", value: "!GetAtt R.Arn", want: "arn:r"},
		{name: "getatt list", value: "!GetAtt [R, Arn]", want: "arn:r"},
		{name: "sub", value: `!Sub "${AWS::StackName}-${P}-${R.Arn}-${!Keep}"`, want: "S-p-arn:r-${Keep}"},
		{name: "sub with variables", value: `!Sub ["${A}/${P}", {A: !Ref R}]`, want: "r-1/p"},
		{name: "join list parameter", value: `!Join ["+", !Ref L]`, want: "a+b"},
		{name: "select split", value: `!Select [1, !Split [",", "x,y,z"]]`, want: "y"},
		{name: "if true", value: `!If [IsP, yes, no]`, want: "yes"},
		{name: "if not", value: `!If [NotP, yes, no]`, want: "no"},
		{name: "if and/or", value: `!If [Both, yes, no]`, want: "yes"},
		{name: "long form", value: `{"Fn::Join": ["-", [{"Ref": "P"}, "q"]]}`, want: "p-q"},
		{name: "no value", value: `!If [NotP, x, !Ref AWS::NoValue]`, unset: true},
		{name: "unknown name", value: "!Ref Nope", wantErr: "no parameter, resource or pseudo parameter"},
		{name: "list where a string goes", value: "!Ref L", wantErr: "is a list, not a string"},
		{name: "select out of range", value: `!Select [5, !Ref L]`, wantErr: "out of range"},
		{name: "unsupported", value: `!FindInMap [M, k, v]`, wantErr: "Fn::FindInMap is not supported"},
	} {
		src := `
Parameters:
  P: {Type: String}
  D: {Type: String, Default: dflt}
  L: {Type: CommaDelimitedList}
Conditions:
  IsP: !Equals [!Ref P, p]
  NotP: !Not [!Condition IsP]
  Both: !And [!Condition IsP, !Or [!Condition NotP, !Equals [a, a]]]
Resources:
  R: {Type: AWS::SQS::Queue}
  F:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          V: ` + c.value + "\n"
		tp, err := ParseTemplate("inline.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		env, err := tp.Environment("F", r)
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err = %v, want one saying %q", c.name, err, c.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.unset:
			if v, ok := env["V"]; ok {
				t.Errorf("%s: V = %q, want it left out", c.name, v)
			}
		case env["V"] != c.want:
			t.Errorf("%s: V = %q, want %q", c.name, env["V"], c.want)
		}
	}
}

// TestResourceSpecs: fixture is template.yaml. The job queue and its DLQ carry the template's
// FIFO settings, visibility timeout and retention, and the redrive policy (maxReceiveCount 20);
// the state table its keys, GSIs and TTL attribute; the webhook secret its generation settings.
func TestResourceSpecs(t *testing.T) {
	t.Parallel()
	tp := loadTemplate(t)
	r := Values{StackName: "S"}
	queues, err := tp.Queues(r)
	if err != nil {
		t.Fatal(err)
	}
	wantQueues := []QueueSpec{
		{LogicalID: "JobQueue", DeadLetterQueue: "JobDeadLetterQueue", MaxReceiveCount: 20, Attributes: map[string]string{
			"FifoQueue": "true", "ContentBasedDeduplication": "false", "DeduplicationScope": "messageGroup",
			"FifoThroughputLimit": "perMessageGroupId", "VisibilityTimeout": "360", "MessageRetentionPeriod": "345600",
			"SqsManagedSseEnabled": "true",
		}},
		{LogicalID: "JobDeadLetterQueue", Attributes: map[string]string{"FifoQueue": "true", "MessageRetentionPeriod": "1209600", "SqsManagedSseEnabled": "true"}},
		{LogicalID: "AmiWatcherDeadLetterQueue", Attributes: map[string]string{"MessageRetentionPeriod": "1209600", "SqsManagedSseEnabled": "true"}},
	}
	if diff := cmp.Diff(wantQueues, queues); diff != "" {
		t.Errorf("queues (-want +got):\n%s", diff)
	}
	tables, err := tp.Tables(r)
	if err != nil {
		t.Fatal(err)
	}
	wantTables := []TableSpec{{
		LogicalID: "StateTable", BillingMode: "PAY_PER_REQUEST",
		Attributes: map[string]string{"pk": "S", "sk": "S", "pool": "S", "phase": "S", "day": "S", "receivedMs": "N"},
		Key:        []string{"pk", "sk"},
		Indexes: []IndexSpec{
			{Name: "pool", Key: []string{"pool", "pk"}, Projection: "ALL"},
			{Name: "phase", Key: []string{"phase", "pk"}, Projection: "KEYS_ONLY"},
			{Name: "recent", Key: []string{"day", "receivedMs"}, Projection: "ALL"},
		},
		TTLAttribute: "expiresAt", SSE: true,
	}}
	if diff := cmp.Diff(wantTables, tables); diff != "" {
		t.Errorf("tables (-want +got):\n%s", diff)
	}
	secrets, err := tp.Secrets(r)
	if err != nil {
		t.Fatal(err)
	}
	wantSecrets := []SecretSpec{{LogicalID: "WebhookSecret", Description: "Spot Runner GitHub App webhook secret",
		Generate: &GenerateSpec{PasswordLength: 48, ExcludePunctuation: true}}}
	if diff := cmp.Diff(wantSecrets, secrets); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
}
