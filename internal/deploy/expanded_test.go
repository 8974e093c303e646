package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// expandedVar names the file TestExpanded reads: template.yaml as scripts/sam-expand.py expands
// it (JSON; a relative path is from the repository root).
const expandedVar = "SPOTRUNNER_EXPANDED_TEMPLATE"

// expanded is the Resources section of the expanded template, by logical id.
type expanded map[string]expandedResource

type expandedResource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
}

// TestExpanded: fixture is template.yaml as CloudFormation receives it, after the SAM transform
// (scripts/sam-expand.py; `make validate` writes .aws-sam/expanded.json and sets expandedVar):
// Globals merged into each function, and the execution roles, event source mappings, rules and
// schedules SAM writes. Without the variable it skips, so that a plain `go test ./...` needs no
// Python. On that template:
//   - environment: each function sets every variable its service requires (but those Lambda
//     sets) and none its service does not read, as TestFunctionEnvironments checks before SAM;
//   - iam: each function's role allows exactly its calls, plus the managed policies SAM adds for
//     logging and event sources; no statement anywhere has a wildcard action, and Resource "*"
//     goes only with actions that have no resource-level permissions;
//   - names: every name given to a resource carries the stack, so two stacks in one account and
//     region never collide;
//   - resource variables: variables that name a resource name the right one.
func TestExpanded(t *testing.T) {
	t.Parallel()
	path := os.Getenv(expandedVar)
	if path == "" {
		t.Skipf("%s is not set: `make validate` expands template.yaml (scripts/sam-expand.py) and runs this test", expandedVar)
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(world.Root(), path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", expandedVar, err)
	}
	var tmpl struct{ Resources expanded }
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatalf("%s: parse %s: %v", expandedVar, path, err)
	}
	res := tmpl.Resources
	if len(res.ids("AWS::Lambda::Function")) == 0 {
		t.Fatalf("%s: %s has no AWS::Lambda::Function: not an expanded template.yaml", expandedVar, path)
	}
	for _, c := range []struct {
		name  string
		check func(*testing.T)
	}{
		{"environment", res.checkEnvironments},
		{"iam", res.checkIAM},
		{"names", res.checkNames},
		{"resource variables", res.checkResourceVariables},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.check(t)
		})
	}
}

func (res expanded) checkEnvironments(t *testing.T) {
	services, err := filepath.Glob(filepath.Join(world.Root(), "services", "*", "main.go"))
	if err != nil || len(services) == 0 {
		t.Fatalf("no services: %v", err)
	}
	for _, fn := range res.ids("AWS::Lambda::Function") {
		i := slices.IndexFunc(services, func(p string) bool {
			return strings.EqualFold(strings.TrimSuffix(fn, "Function"), filepath.Base(filepath.Dir(p)))
		})
		if i < 0 {
			t.Errorf("%s: no services/<name>/main.go for it (the function is <Name>Function)", fn)
			continue
		}
		service := filepath.Base(filepath.Dir(services[i]))
		all, required := variablesOf(t, service)
		set := res.variables(fn)
		var missing, unread, reserved []string
		for _, v := range required {
			if _, ok := set[v]; !ok && !setByLambda[v] {
				missing = append(missing, v)
			}
		}
		for _, v := range slices.Sorted(maps.Keys(set)) {
			switch {
			case setByLambda[v]:
				reserved = append(reserved, v)
			case !slices.Contains(all, v):
				unread = append(unread, v)
			}
		}
		if diff := cmp.Diff([]string(nil), missing); diff != "" {
			t.Errorf("%s: variables services/%s requires are not set (-want +got):\n%s", fn, service, diff)
		}
		if diff := cmp.Diff([]string(nil), unread); diff != "" {
			t.Errorf("%s: variables set that services/%s does not read (-want +got):\n%s", fn, service, diff)
		}
		if diff := cmp.Diff([]string(nil), reserved); diff != "" {
			t.Errorf("%s: variables Lambda sets itself (and refuses in a template) (-want +got):\n%s", fn, diff)
		}
	}
}

// The managed policies SAM attaches to a function role it creates, by AWS's ARN (partition aws:
// sam-expand.py expands for us-east-1). HttpApi, EventBridgeRule and ScheduleV2 events add none:
// they invoke through a resource policy (AWS::Lambda::Permission) or a role of their own.
const (
	// logs:CreateLogGroup, logs:CreateLogStream and logs:PutLogEvents: the function's own logs.
	// On every function role.
	basicExecutionRole = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
	// sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes (and the logging above):
	// Lambda's event source mapping polls the queue with the function's role. With an SQS event.
	sqsQueueExecutionRole = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
)

// noResourceLevel are the actions a statement may allow on Resource "*": each has no resource
// type in its row of the AWS Service Authorization Reference
// (https://docs.aws.amazon.com/service-authorization/latest/reference/, "Actions defined by
// Amazon EC2" and "... by AWS Systems Manager"), so IAM accepts nothing narrower. Add an action
// only after reading its row there.
var noResourceLevel = map[string]bool{
	"ec2:DescribeInstances":  true,
	"ssm:DescribeParameters": true,
}

func (res expanded) checkIAM(t *testing.T) {
	for _, fn := range res.ids("AWS::Lambda::Function") {
		props := res[fn].Properties
		role, _ := getAttOf(props["Role"], "Arn")
		if res[role].Type != "AWS::IAM::Role" {
			t.Errorf("%s: Role %s is not GetAtt <role>.Arn of an AWS::IAM::Role of the stack", fn, show(props["Role"]))
			continue
		}
		want, ok := calls[fn]
		if !ok {
			t.Errorf("%s: no entry in calls: list the AWS actions its code makes", fn)
			continue
		}
		var allowed []string
		for _, p := range cfnItems(res[role].Properties["Policies"]) {
			statements := cfnItems(asMap(p["PolicyDocument"])["Statement"])
			if p["PolicyName"] == "DeadLetterQueuePolicy" {
				// SAM's, for the function's DeadLetterQueue: send to that queue, nothing else.
				dlq := []map[string]any{{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": asMap(props["DeadLetterConfig"])["TargetArn"]}}
				if diff := cmp.Diff(dlq, statements); diff != "" {
					t.Errorf("%s: %s DeadLetterQueuePolicy against sending to its DeadLetterConfig queue (-want +got):\n%s", fn, role, diff)
				}
				continue
			}
			for _, st := range statements {
				allowed = append(allowed, cfnStrings(st["Action"])...)
			}
		}
		// Policies of their own that attach to the role count as its inline ones.
		for _, id := range res.ids("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") {
			if slices.ContainsFunc(cfnItems(res[id].Properties["Roles"]), func(r map[string]any) bool { return r["Ref"] == role }) {
				for _, st := range cfnItems(asMap(res[id].Properties["PolicyDocument"])["Statement"]) {
					allowed = append(allowed, cfnStrings(st["Action"])...)
				}
			}
		}
		slices.Sort(allowed)
		w := slices.Sorted(slices.Values(want))
		if diff := cmp.Diff(w, slices.Compact(allowed)); diff != "" {
			t.Errorf("%s: %s allows other actions than the calls its code makes (-calls +allowed):\n%s", fn, role, diff)
		}
		managed := []string{basicExecutionRole}
		if res.hasSQSEvent(fn) {
			managed = append(managed, sqsQueueExecutionRole)
		}
		if diff := cmp.Diff(managed, cfnStrings(res[role].Properties["ManagedPolicyArns"])); diff != "" {
			t.Errorf("%s: %s managed policies against SAM's for logging and the function's event sources (-want +got):\n%s", fn, role, diff)
		}
	}
	for _, id := range res.ids() {
		res.statements(res[id].Properties, func(st map[string]any) {
			where := fmt.Sprintf("%s: statement %s", id, show(st["Sid"]))
			if st["Sid"] == nil {
				where = id + ": statement (no Sid)"
			}
			if _, ok := st["NotAction"]; ok {
				t.Errorf("%s: NotAction allows every action but those listed", where)
			}
			actions := cfnStrings(st["Action"])
			for _, a := range actions {
				if strings.Contains(a, "*") {
					t.Errorf("%s: wildcard action %q", where, a)
				}
			}
			if slices.Contains(cfnStrings(st["Resource"]), "*") {
				for _, a := range actions {
					if !noResourceLevel[a] {
						t.Errorf("%s: Resource \"*\" for %s, which has resource-level permissions: name its resources (see noResourceLevel)", where, a)
					}
				}
			}
		})
	}
}

// namingProperties give the resource that has them its name (at the top of its Properties).
var namingProperties = []string{
	"Name", "AlarmName", "AliasName", "BucketName", "DashboardName", "FunctionName", "GroupName",
	"InstanceProfileName", "LaunchTemplateName", "LayerName", "LogGroupName", "ManagedPolicyName",
	"ParameterName", "QueueName", "RoleName", "RuleName", "ScheduleName", "StateMachineName",
	"TableName", "TopicName",
}

// referencing are naming properties that, on these types, name another resource instead.
var referencing = map[string]bool{
	"AWS::Lambda::Permission.FunctionName":                               true,
	"AWS::Lambda::EventSourceMapping.FunctionName":                       true,
	"AWS::Lambda::EventInvokeConfig.FunctionName":                        true,
	"AWS::Logs::MetricFilter.LogGroupName":                               true,
	"AWS::Logs::SubscriptionFilter.LogGroupName":                         true,
	"AWS::ImageBuilder::InfrastructureConfiguration.InstanceProfileName": true,
}

// hints say where a name comes from when SAM, not the template, writes it.
var hints = map[string]string{
	"AWS::Scheduler::Schedule": " (SAM names a ScheduleV2 event's schedule after its logical id: give the event a Name, or OmitName: true)",
}

func (res expanded) checkNames(t *testing.T) {
	for _, id := range res.ids() {
		r := res[id]
		for _, p := range namingProperties {
			v, ok := r.Properties[p]
			if !ok || referencing[r.Type+"."+p] {
				continue
			}
			if !res.stackScoped(v) {
				t.Errorf("%s (%s): %s %s does not carry the stack: use !Sub with ${AWS::StackName} or a resource of the stack, or leave it to CloudFormation%s",
					id, r.Type, p, show(v), hints[r.Type])
			}
		}
	}
}

// subVar finds the ${Name} and ${Resource.Attribute} of a Fn::Sub string (not the literal ${!...}).
var subVar = regexp.MustCompile(`\$\{([^!}][^}]*)\}`)

// stackScoped reports whether a name carries the stack: the stack name itself, or a Ref or
// GetAtt of one of its resources (whose names CloudFormation derives from the stack name).
// A parameter does not: two stacks may be given the same value.
func (res expanded) stackScoped(v any) bool {
	m := asMap(v)
	switch {
	case m["Ref"] != nil:
		return m["Ref"] == "AWS::StackName" || res.has(m["Ref"])
	case m["Fn::GetAtt"] != nil:
		target, _ := getAttOf(m, "")
		return res.has(target)
	case m["Fn::Sub"] != nil:
		s, vars := m["Fn::Sub"], map[string]any{}
		if l, ok := s.([]any); ok && len(l) == 2 {
			s, vars = l[0], asMap(l[1])
		}
		str, _ := s.(string)
		for _, sm := range subVar.FindAllStringSubmatch(str, -1) {
			if v, ok := vars[sm[1]]; ok {
				if res.stackScoped(v) {
					return true
				}
				continue
			}
			base, _, _ := strings.Cut(sm[1], ".")
			if sm[1] == "AWS::StackName" || res.has(base) {
				return true
			}
		}
	case m["Fn::Join"] != nil:
		if l, ok := m["Fn::Join"].([]any); ok && len(l) == 2 {
			parts, _ := l[1].([]any)
			return slices.ContainsFunc(parts, res.stackScoped)
		}
	case m["Fn::If"] != nil:
		if l, ok := m["Fn::If"].([]any); ok && len(l) == 3 {
			noValue := func(b any) bool { return asMap(b)["Ref"] == "AWS::NoValue" }
			return (noValue(l[1]) || res.stackScoped(l[1])) && (noValue(l[2]) || res.stackScoped(l[2]))
		}
	}
	return false
}

// resourceVariables are the variables that name a resource, a parameter's resource or the stack
// itself, and the value each must have on every function that sets it.
var resourceVariables = map[string]any{
	"QUEUE_URL":              map[string]any{"Ref": "JobQueue"},
	"TABLE_NAME":             map[string]any{"Ref": "StateTable"},
	"WEBHOOK_SECRET_ARN":     map[string]any{"Ref": "WebhookSecret"},
	"PRIVATE_KEY_SECRET_ARN": map[string]any{"Ref": "PrivateKeySecretArn"},
	"SUBNET_IDS":             map[string]any{"Fn::Join": []any{",", map[string]any{"Ref": "RunnerSubnetIds"}}},
	"DEPLOYMENT":             map[string]any{"Ref": "AWS::StackName"},
	"ACCOUNT_ID":             map[string]any{"Ref": "AWS::AccountId"},
	"AWS_PARTITION":          map[string]any{"Ref": "AWS::Partition"},
}

// pipelineEntry is one preset=${Stack.Outputs.ImagePipelineArn} of PIPELINES.
var pipelineEntry = regexp.MustCompile(`^([a-z0-9-]+)=\$\{([A-Za-z0-9]+)\.Outputs\.ImagePipelineArn\}$`)

func (res expanded) checkResourceVariables(t *testing.T) {
	// Each preset's image stack (sam/image.yaml), by preset name.
	stacks := map[string]string{}
	for _, id := range res.ids("AWS::CloudFormation::Stack") {
		if p, ok := asMap(res[id].Properties["Parameters"])["PresetName"].(string); ok {
			stacks[p] = id
		}
	}
	for _, fn := range res.ids("AWS::Lambda::Function") {
		vars := res.variables(fn)
		for _, name := range slices.Sorted(maps.Keys(vars)) {
			v := vars[name]
			want, ok := resourceVariables[name]
			switch {
			case ok:
				if diff := cmp.Diff(want, v); diff != "" {
					t.Errorf("%s: %s names the wrong resource (-want +got):\n%s", fn, name, diff)
				}
			case name == "PRESETS":
				s, _ := v.(string)
				if diff := cmp.Diff(slices.Sorted(maps.Keys(stacks)), slices.Sorted(slices.Values(strings.Split(s, ",")))); diff != "" {
					t.Errorf("%s: PRESETS against the presets with an image stack (-want +got):\n%s", fn, diff)
				}
			case name == "PIPELINES":
				s, _ := asMap(v)["Fn::Sub"].(string)
				for _, entry := range strings.Split(s, ",") {
					m := pipelineEntry.FindStringSubmatch(entry)
					if m == nil || stacks[m[1]] != m[2] {
						t.Errorf("%s: PIPELINES entry %q is not <preset>=${<its image stack>.Outputs.ImagePipelineArn} (image stacks: %v)", fn, entry, stacks)
					}
				}
			default:
				if target, _ := getAttOf(v, ""); res.has(asMap(v)["Ref"]) || res.has(target) {
					t.Errorf("%s: %s is %s, a resource of the stack: add it to resourceVariables", fn, name, show(v))
				}
			}
		}
	}
}

// ids are the logical ids of the resources of the given types (all when none), sorted.
func (res expanded) ids(types ...string) []string {
	var out []string
	for id, r := range res {
		if len(types) == 0 || slices.Contains(types, r.Type) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func (res expanded) has(id any) bool {
	s, ok := id.(string)
	_, found := res[s]
	return ok && found
}

// variables are a function's environment variables, Globals included.
func (res expanded) variables(fn string) map[string]any {
	return asMap(asMap(res[fn].Properties["Environment"])["Variables"])
}

// hasSQSEvent reports an event source mapping from an SQS queue to the function.
func (res expanded) hasSQSEvent(fn string) bool {
	for _, id := range res.ids("AWS::Lambda::EventSourceMapping") {
		p := res[id].Properties
		queue, _ := getAttOf(p["EventSourceArn"], "Arn")
		if asMap(p["FunctionName"])["Ref"] == fn && res[queue].Type == "AWS::SQS::Queue" {
			return true
		}
	}
	return false
}

// statements calls f with every policy statement in v, wherever it sits.
func (res expanded) statements(v any, f func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		_, action := v["Action"]
		_, notAction := v["NotAction"]
		if _, ok := v["Effect"]; ok && (action || notAction) {
			f(v)
			return
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			res.statements(v[k], f)
		}
	case []any:
		for _, e := range v {
			res.statements(e, f)
		}
	}
}

// getAttOf is the logical id a Fn::GetAtt names (either form), when its attribute is attr (any
// attribute when attr is empty).
func getAttOf(v any, attr string) (string, bool) {
	var id, a string
	switch g := asMap(v)["Fn::GetAtt"].(type) {
	case []any:
		if len(g) == 2 {
			id, _ = g[0].(string)
			a, _ = g[1].(string)
		}
	case string:
		id, a, _ = strings.Cut(g, ".")
	}
	return id, id != "" && (attr == "" || a == attr)
}

// cfnItems are the objects of a list or a single object, with both branches of a Fn::If and no
// Ref AWS::NoValue.
func cfnItems(v any) []map[string]any {
	switch v := v.(type) {
	case []any:
		var out []map[string]any
		for _, e := range v {
			out = append(out, cfnItems(e)...)
		}
		return out
	case map[string]any:
		if b, ok := v["Fn::If"].([]any); ok && len(b) == 3 {
			return append(cfnItems(b[1]), cfnItems(b[2])...)
		}
		if v["Ref"] == "AWS::NoValue" {
			return nil
		}
		return []map[string]any{v}
	}
	return nil
}

// cfnStrings are the literal strings of a string or a list; intrinsic functions are skipped.
func cfnStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, cfnStrings(e)...)
		}
		return out
	}
	return nil
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
