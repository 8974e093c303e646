package lambdasim

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"
)

// Template is a SAM template (template.yaml) read for the local world: its parameters,
// conditions, Globals and resources, with the short-form intrinsic functions kept as YAML tags
// until a Resolver gives them values.
type Template struct {
	name       string // for error messages: the file name
	params     map[string]param
	conditions map[string]*yaml.Node
	resources  map[string]*yaml.Node // logical id → the resource's mapping
	order      []string              // logical ids in file order
	globalFn   *yaml.Node            // Globals.Function, or nil
}

type param struct {
	typ        string
	def        string
	hasDefault bool
}

// fromSSM reports whether CloudFormation reads the parameter's value from SSM (its Default is
// the SSM parameter's name).
func (p param) fromSSM() bool { return strings.HasPrefix(p.typ, "AWS::SSM::Parameter::Value<") }

// isList reports whether !Ref of the parameter is a list.
func (p param) isList() bool {
	t := p.typ
	if p.fromSSM() {
		t = strings.TrimSuffix(strings.TrimPrefix(t, "AWS::SSM::Parameter::Value<"), ">")
	}
	return t == "CommaDelimitedList" || strings.HasPrefix(t, "List<")
}

// LoadTemplate reads and parses the template at path.
func LoadTemplate(path string) (*Template, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	return ParseTemplate(filepath.Base(path), raw)
}

// ParseTemplate parses a template's source; name is used in error messages.
func ParseTemplate(name string, src []byte) (*Template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("parse template %s: %w", name, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("parse template %s: not a mapping", name)
	}
	root := doc.Content[0]
	t := &Template{name: name, params: map[string]param{}, conditions: map[string]*yaml.Node{}, resources: map[string]*yaml.Node{}}
	eachKey(child(root, "Parameters"), func(k string, v *yaml.Node) {
		p := param{typ: scalar(child(v, "Type"))}
		if d := child(v, "Default"); d != nil {
			p.def, p.hasDefault = d.Value, true
		}
		t.params[k] = p
	})
	eachKey(child(root, "Conditions"), func(k string, v *yaml.Node) { t.conditions[k] = v })
	eachKey(child(root, "Resources"), func(k string, v *yaml.Node) {
		t.resources[k] = v
		t.order = append(t.order, k)
	})
	if len(t.order) == 0 {
		return nil, fmt.Errorf("parse template %s: no Resources", name)
	}
	t.globalFn = child(child(root, "Globals"), "Function")
	return t, nil
}

// child is the value of key in mapping n, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// eachKey calls f for each key of mapping n, in order.
func eachKey(n *yaml.Node, f func(key string, value *yaml.Node)) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		f(n.Content[i].Value, n.Content[i+1])
	}
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// resourceType is the Type of resource id, or "" when there is none.
func (t *Template) resourceType(id string) string { return scalar(child(t.resources[id], "Type")) }

// ids are the logical ids of the resources of type typ, in file order.
func (t *Template) ids(typ string) []string {
	var out []string
	for _, id := range t.order {
		if t.resourceType(id) == typ {
			out = append(out, id)
		}
	}
	return out
}

func (t *Template) props(id string) *yaml.Node { return child(t.resources[id], "Properties") }

func (t *Template) errorf(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return fmt.Errorf("%s:%d: %s", t.name, line, fmt.Sprintf(format, args...))
}

// plainInt reads a property that must be a plain number (no intrinsic function).
func (t *Template) plainInt(n *yaml.Node, what string) (int, error) {
	if _, _, ok := intrinsic(n); ok || n.Kind != yaml.ScalarNode {
		return 0, t.errorf(n, "%s must be a plain number in the local world", what)
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		return 0, t.errorf(n, "%s %q is not a number", what, n.Value)
	}
	return v, nil
}

// --- Functions -------------------------------------------------------------------------------

// SAM's defaults for a function that sets neither the property nor Globals.
const (
	samDefaultTimeout  = 3 * time.Second
	samDefaultMemoryMB = 128
	sqsDefaultBatch    = 10
)

// FunctionSpec is an AWS::Serverless::Function as the local world runs it.
type FunctionSpec struct {
	// LogicalID is the function's logical id, e.g. IngestFunction.
	LogicalID string
	// Service is the folder under services/ that holds its main package: the logical id without
	// "Function", in lower case, as the Makefile's build-%Function target builds it.
	Service string
	// Timeout is the function's Timeout, else Globals.Function.Timeout, else SAM's 3 s.
	Timeout time.Duration
	// MemoryMB is MemorySize, else Globals.Function.MemorySize, else SAM's 128.
	MemoryMB int
	// SQS is the function's SQS event source, or nil.
	SQS *SQSEventSpec
	// Schedule is the function's schedule (ScheduleV2 or Schedule event), or nil.
	Schedule *ScheduleSpec
}

// SQSEventSpec is a function's SQS event (Lambda's event source mapping).
type SQSEventSpec struct {
	// Queue is the logical id of the queue (the event's Queue is !GetAtt <Queue>.Arn).
	Queue string
	// BatchSize is the event's BatchSize, default 10.
	BatchSize int
	// ReportBatchItemFailures says FunctionResponseTypes holds ReportBatchItemFailures.
	ReportBatchItemFailures bool
}

// ScheduleSpec is a function's schedule.
type ScheduleSpec struct {
	// Expression is the ScheduleExpression (ScheduleV2) or Schedule, e.g. "rate(5 minutes)".
	Expression string
	// Every is the period of a rate expression; 0 for a cron expression.
	Every time.Duration
	// Input is the event's Input, or "" when it gives none.
	Input string
}

// Functions returns the template's functions in file order.
func (t *Template) Functions() ([]FunctionSpec, error) {
	var out []FunctionSpec
	for _, id := range t.ids("AWS::Serverless::Function") {
		f, err := t.Function(id)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Function returns the function with logical id id.
func (t *Template) Function(id string) (FunctionSpec, error) {
	if t.resourceType(id) != "AWS::Serverless::Function" {
		return FunctionSpec{}, fmt.Errorf("%s: no AWS::Serverless::Function %q", t.name, id)
	}
	props := t.props(id)
	f := FunctionSpec{
		LogicalID: id,
		Service:   strings.ToLower(strings.TrimSuffix(id, "Function")),
		Timeout:   samDefaultTimeout,
		MemoryMB:  samDefaultMemoryMB,
	}
	for _, src := range []*yaml.Node{t.globalFn, props} {
		if n := child(src, "Timeout"); n != nil {
			s, err := t.plainInt(n, id+" Timeout")
			if err != nil {
				return FunctionSpec{}, err
			}
			f.Timeout = time.Duration(s) * time.Second
		}
		if n := child(src, "MemorySize"); n != nil {
			mb, err := t.plainInt(n, id+" MemorySize")
			if err != nil {
				return FunctionSpec{}, err
			}
			f.MemoryMB = mb
		}
	}
	var err error
	eachKey(child(props, "Events"), func(name string, ev *yaml.Node) {
		if err != nil {
			return
		}
		evProps := child(ev, "Properties")
		switch typ := scalar(child(ev, "Type")); typ {
		case "SQS":
			err = t.sqsEvent(id, name, evProps, &f)
		case "ScheduleV2", "Schedule":
			err = t.scheduleEvent(id, name, typ, evProps, &f)
		}
	})
	return f, err
}

func (t *Template) sqsEvent(fn, name string, props *yaml.Node, f *FunctionSpec) error {
	if f.SQS != nil {
		return t.errorf(props, "%s: a second SQS event (%s); the local world runs one per function", fn, name)
	}
	q := child(props, "Queue")
	queue, ok := getAttArn(q)
	if !ok {
		return t.errorf(q, "%s event %s: Queue must be !GetAtt <queue>.Arn of a queue in the template", fn, name)
	}
	spec := &SQSEventSpec{Queue: queue, BatchSize: sqsDefaultBatch}
	if n := child(props, "BatchSize"); n != nil {
		b, err := t.plainInt(n, fn+" "+name+" BatchSize")
		if err != nil {
			return err
		}
		spec.BatchSize = b
	}
	if n := child(props, "FunctionResponseTypes"); n != nil {
		for _, it := range n.Content {
			if it.Value == "ReportBatchItemFailures" {
				spec.ReportBatchItemFailures = true
			}
		}
	}
	f.SQS = spec
	return nil
}

// getAttArn returns X when n is !GetAtt X.Arn (short or long form).
func getAttArn(n *yaml.Node) (string, bool) {
	if n == nil {
		return "", false
	}
	fn, arg, ok := intrinsic(n)
	if !ok || fn != "Fn::GetAtt" {
		return "", false
	}
	switch arg.Kind {
	case yaml.ScalarNode:
		id, attr, _ := strings.Cut(arg.Value, ".")
		return id, attr == "Arn"
	case yaml.SequenceNode:
		if len(arg.Content) == 2 && arg.Content[1].Value == "Arn" {
			return arg.Content[0].Value, true
		}
	}
	return "", false
}

var rateExpr = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)

func (t *Template) scheduleEvent(fn, name, typ string, props *yaml.Node, f *FunctionSpec) error {
	key := "ScheduleExpression"
	if typ == "Schedule" {
		key = "Schedule"
	}
	n := child(props, key)
	if n == nil || n.Kind != yaml.ScalarNode || strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return t.errorf(props, "%s event %s: %s must be a plain string", fn, name, key)
	}
	s := &ScheduleSpec{Expression: n.Value, Input: scalar(child(props, "Input"))}
	if m := rateExpr.FindStringSubmatch(n.Value); m != nil {
		k, _ := strconv.Atoi(m[1])
		unit := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.TrimSuffix(m[2], "s")]
		s.Every = time.Duration(k) * unit
	} else if !strings.HasPrefix(n.Value, "cron(") {
		return t.errorf(n, "%s event %s: schedule expression %q is neither rate(...) nor cron(...)", fn, name, n.Value)
	}
	f.Schedule = s
	return nil
}

// scheduleName evaluates the Name of function id's schedule with r; "" when it gives none.
func (t *Template) scheduleName(id string, r Resolver) (string, error) {
	var name *yaml.Node
	eachKey(child(t.props(id), "Events"), func(_ string, ev *yaml.Node) {
		if typ := scalar(child(ev, "Type")); typ == "ScheduleV2" || typ == "Schedule" {
			name = child(child(ev, "Properties"), "Name")
		}
	})
	if name == nil {
		return "", nil
	}
	return evaluator{t: t, r: r}.str(name)
}

// Environment returns the environment variables the template gives function id (Globals'
// merged under the function's own), every intrinsic function evaluated with r. A variable whose
// value is AWS::NoValue is left out.
func (t *Template) Environment(id string, r Resolver) (map[string]string, error) {
	if t.resourceType(id) != "AWS::Serverless::Function" {
		return nil, fmt.Errorf("%s: no AWS::Serverless::Function %q", t.name, id)
	}
	e := evaluator{t: t, r: r}
	env := map[string]string{}
	for _, src := range []*yaml.Node{t.globalFn, t.props(id)} {
		var err error
		eachKey(child(child(src, "Environment"), "Variables"), func(k string, v *yaml.Node) {
			if err != nil {
				return
			}
			var val any
			if val, err = e.value(v); err != nil {
				err = fmt.Errorf("%s environment %s: %w", id, k, err)
				return
			}
			switch x := val.(type) {
			case noValue:
				delete(env, k)
			case string:
				env[k] = x
			default:
				err = t.errorf(v, "%s environment %s: is %s, not a string", id, k, describe(val))
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return env, nil
}

// --- HTTP API routes -------------------------------------------------------------------------

// Route is one route of the template's HTTP API and the function behind it.
type Route struct {
	// Key is the route key, "METHOD /path", e.g. "POST /webhook".
	Key string
	// Function is the logical id of the function it invokes.
	Function string
}

var integrationTarget = regexp.MustCompile(`^integrations/\$\{([A-Za-z0-9]+)\}$`)

// Routes returns the HTTP API's routes: the functions' HttpApi events and the
// AWS::ApiGatewayV2::Route resources whose integration invokes a function of the template, with
// payload format 2.0 (the only one the local world speaks).
func (t *Template) Routes() ([]Route, error) {
	var out []Route
	for _, id := range t.ids("AWS::Serverless::Function") {
		var err error
		eachKey(child(t.props(id), "Events"), func(name string, ev *yaml.Node) {
			if err != nil || scalar(child(ev, "Type")) != "HttpApi" {
				return
			}
			p := child(ev, "Properties")
			if v := scalar(child(p, "PayloadFormatVersion")); v != "" && v != "2.0" {
				err = t.errorf(p, "%s event %s: payload format %s; the local world speaks 2.0", id, name, v)
				return
			}
			method, path := scalar(child(p, "Method")), scalar(child(p, "Path"))
			if method == "" || path == "" {
				err = t.errorf(ev, "%s event %s: want a Method and a Path", id, name)
				return
			}
			out = append(out, Route{Key: strings.ToUpper(method) + " " + path, Function: id})
		})
		if err != nil {
			return nil, err
		}
	}
	for _, id := range t.ids("AWS::ApiGatewayV2::Route") {
		p := t.props(id)
		key, target := scalar(child(p, "RouteKey")), child(p, "Target")
		m := integrationTarget.FindStringSubmatch(scalar(target))
		if key == "" || m == nil {
			return nil, t.errorf(p, "route %s: want a RouteKey and Target !Sub integrations/${Integration}", id)
		}
		integ := t.props(m[1])
		if t.resourceType(m[1]) != "AWS::ApiGatewayV2::Integration" {
			return nil, t.errorf(target, "route %s: %s is not an AWS::ApiGatewayV2::Integration", id, m[1])
		}
		if v := scalar(child(integ, "PayloadFormatVersion")); v != "2.0" {
			return nil, t.errorf(integ, "integration %s: payload format %q; the local world speaks 2.0", m[1], v)
		}
		fn, ok := getAttArn(child(integ, "IntegrationUri"))
		if !ok || t.resourceType(fn) != "AWS::Serverless::Function" {
			return nil, t.errorf(integ, "integration %s: IntegrationUri must be !GetAtt <function>.Arn", m[1])
		}
		out = append(out, Route{Key: key, Function: fn})
	}
	return out, nil
}

// --- Queues, tables, secrets, parameters ---------------------------------------------------------

// QueueSpec is an AWS::SQS::Queue.
type QueueSpec struct {
	LogicalID string
	// Name is the QueueName property, or "" for a generated name.
	Name string
	// Attributes are the queue's SQS attributes, named as SQS names them (the property names):
	// FifoQueue, VisibilityTimeout, ... RedrivePolicy is not among them.
	Attributes map[string]string
	// DeadLetterQueue is the logical id of the queue RedrivePolicy sends to, or "".
	DeadLetterQueue string
	// MaxReceiveCount is RedrivePolicy's maxReceiveCount (0 without a RedrivePolicy).
	MaxReceiveCount int
}

// queueAttributes are the AWS::SQS::Queue properties that are SQS queue attributes of the same
// name and value.
var queueAttributes = []string{
	"ContentBasedDeduplication", "DeduplicationScope", "DelaySeconds", "FifoQueue", "FifoThroughputLimit",
	"KmsDataKeyReusePeriodSeconds", "KmsMasterKeyId", "MaximumMessageSize", "MessageRetentionPeriod",
	"ReceiveMessageWaitTimeSeconds", "SqsManagedSseEnabled", "VisibilityTimeout",
}

// Queues returns the template's queues in file order, intrinsic functions evaluated with r.
func (t *Template) Queues(r Resolver) ([]QueueSpec, error) {
	e := evaluator{t: t, r: r}
	var out []QueueSpec
	for _, id := range t.ids("AWS::SQS::Queue") {
		if ok, err := t.present(e, id); err != nil || !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		q := QueueSpec{LogicalID: id, Attributes: map[string]string{}}
		var err error
		eachKey(t.props(id), func(k string, v *yaml.Node) {
			if err != nil {
				return
			}
			switch {
			case k == "QueueName":
				q.Name, err = e.str(v)
			case k == "Tags":
			case k == "RedrivePolicy":
				dlq, ok := getAttArn(child(v, "deadLetterTargetArn"))
				if !ok {
					err = t.errorf(v, "queue %s: RedrivePolicy deadLetterTargetArn must be !GetAtt <queue>.Arn", id)
					return
				}
				q.DeadLetterQueue = dlq
				if n := child(v, "maxReceiveCount"); n != nil {
					q.MaxReceiveCount, err = t.plainInt(n, id+" maxReceiveCount")
				}
			case slices.Contains(queueAttributes, k):
				q.Attributes[k], err = e.str(v)
			default:
				err = t.errorf(v, "queue %s: property %s is not modelled by the local world", id, k)
			}
		})
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

// TableSpec is an AWS::DynamoDB::Table.
type TableSpec struct {
	LogicalID string
	// Name is the TableName property, or "" for a generated name.
	Name        string
	BillingMode string
	// Attributes maps each attribute definition's name to its type (S, N, B).
	Attributes map[string]string
	// Key is the table's key schema: the HASH attribute, then the RANGE one when there is one.
	Key []string
	// Indexes are its global secondary indexes.
	Indexes []IndexSpec
	// TTLAttribute is the attribute TimeToLiveSpecification enables, or "".
	TTLAttribute string
	// SSE says SSESpecification.SSEEnabled.
	SSE bool
}

// IndexSpec is a global secondary index.
type IndexSpec struct {
	Name string
	// Key is the HASH attribute, then the RANGE one when there is one.
	Key []string
	// Projection is ALL, KEYS_ONLY or INCLUDE; NonKeyAttributes go with INCLUDE.
	Projection       string
	NonKeyAttributes []string
}

// tableIgnored are table properties with no effect on what the local world does with the table.
var tableIgnored = []string{"PointInTimeRecoverySpecification", "Tags", "DeletionProtectionEnabled", "ContributorInsightsSpecification", "TableClass"}

// Tables returns the template's tables in file order, intrinsic functions evaluated with r.
func (t *Template) Tables(r Resolver) ([]TableSpec, error) {
	e := evaluator{t: t, r: r}
	var out []TableSpec
	for _, id := range t.ids("AWS::DynamoDB::Table") {
		if ok, err := t.present(e, id); err != nil || !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		tb := TableSpec{LogicalID: id, Attributes: map[string]string{}}
		var err error
		eachKey(t.props(id), func(k string, v *yaml.Node) {
			if err != nil {
				return
			}
			switch {
			case k == "TableName":
				tb.Name, err = e.str(v)
			case k == "BillingMode":
				tb.BillingMode, err = e.str(v)
			case k == "AttributeDefinitions":
				for _, a := range v.Content {
					tb.Attributes[scalar(child(a, "AttributeName"))] = scalar(child(a, "AttributeType"))
				}
			case k == "KeySchema":
				tb.Key, err = t.keySchema(id, v)
			case k == "GlobalSecondaryIndexes":
				for _, ix := range v.Content {
					spec := IndexSpec{Name: scalar(child(ix, "IndexName")), Projection: scalar(child(child(ix, "Projection"), "ProjectionType"))}
					if nk := child(child(ix, "Projection"), "NonKeyAttributes"); nk != nil {
						for _, a := range nk.Content {
							spec.NonKeyAttributes = append(spec.NonKeyAttributes, a.Value)
						}
					}
					if spec.Key, err = t.keySchema(id+" index "+spec.Name, child(ix, "KeySchema")); err != nil {
						return
					}
					tb.Indexes = append(tb.Indexes, spec)
				}
			case k == "TimeToLiveSpecification":
				if scalar(child(v, "Enabled")) == "true" {
					tb.TTLAttribute = scalar(child(v, "AttributeName"))
				}
			case k == "SSESpecification":
				tb.SSE = scalar(child(v, "SSEEnabled")) == "true"
			case slices.Contains(tableIgnored, k):
			default:
				err = t.errorf(v, "table %s: property %s is not modelled by the local world", id, k)
			}
		})
		if err != nil {
			return nil, err
		}
		out = append(out, tb)
	}
	return out, nil
}

// keySchema returns the HASH attribute, then the RANGE one.
func (t *Template) keySchema(what string, n *yaml.Node) ([]string, error) {
	var hash, rng string
	if n != nil {
		for _, el := range n.Content {
			switch scalar(child(el, "KeyType")) {
			case "HASH":
				hash = scalar(child(el, "AttributeName"))
			case "RANGE":
				rng = scalar(child(el, "AttributeName"))
			}
		}
	}
	if hash == "" {
		return nil, t.errorf(n, "%s: key schema without a HASH key", what)
	}
	if rng == "" {
		return []string{hash}, nil
	}
	return []string{hash, rng}, nil
}

// SecretSpec is an AWS::SecretsManager::Secret.
type SecretSpec struct {
	LogicalID string
	// Name is the Name property, or "" for a generated name.
	Name        string
	Description string
	// Value is SecretString, when the template gives one.
	Value string
	// Generate is GenerateSecretString, or nil.
	Generate *GenerateSpec
}

// GenerateSpec is a secret's GenerateSecretString.
type GenerateSpec struct {
	// PasswordLength is optional; Secrets Manager's default is 32.
	PasswordLength                                                         int
	ExcludeCharacters                                                      string
	ExcludeLowercase, ExcludeNumbers, ExcludePunctuation, ExcludeUppercase bool
	IncludeSpace, RequireEachIncludedType                                  bool
	// SecretStringTemplate and GenerateStringKey make the value a JSON document: the template
	// with the generated password under the key.
	SecretStringTemplate, GenerateStringKey string
}

// Secrets returns the template's secrets in file order, intrinsic functions evaluated with r.
func (t *Template) Secrets(r Resolver) ([]SecretSpec, error) {
	e := evaluator{t: t, r: r}
	var out []SecretSpec
	for _, id := range t.ids("AWS::SecretsManager::Secret") {
		if ok, err := t.present(e, id); err != nil || !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		s := SecretSpec{LogicalID: id}
		var err error
		eachKey(t.props(id), func(k string, v *yaml.Node) {
			if err != nil {
				return
			}
			switch k {
			case "Name":
				s.Name, err = e.str(v)
			case "Description":
				s.Description, err = e.str(v)
			case "SecretString":
				s.Value, err = e.str(v)
			case "GenerateSecretString":
				s.Generate, err = t.generateSpec(id, v)
			case "Tags", "KmsKeyId", "ReplicaRegions":
			default:
				err = t.errorf(v, "secret %s: property %s is not modelled by the local world", id, k)
			}
		})
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (t *Template) generateSpec(id string, n *yaml.Node) (*GenerateSpec, error) {
	g := &GenerateSpec{}
	var err error
	flags := map[string]*bool{
		"ExcludeLowercase": &g.ExcludeLowercase, "ExcludeNumbers": &g.ExcludeNumbers, "ExcludePunctuation": &g.ExcludePunctuation,
		"ExcludeUppercase": &g.ExcludeUppercase, "IncludeSpace": &g.IncludeSpace, "RequireEachIncludedType": &g.RequireEachIncludedType,
	}
	eachKey(n, func(k string, v *yaml.Node) {
		if err != nil {
			return
		}
		switch k {
		case "PasswordLength":
			g.PasswordLength, err = t.plainInt(v, id+" PasswordLength")
		case "ExcludeCharacters":
			g.ExcludeCharacters = v.Value
		case "SecretStringTemplate":
			g.SecretStringTemplate = v.Value
		case "GenerateStringKey":
			g.GenerateStringKey = v.Value
		default:
			p, ok := flags[k]
			if !ok {
				err = t.errorf(v, "secret %s: GenerateSecretString.%s is not modelled by the local world", id, k)
				return
			}
			*p = v.Value == "true"
		}
	})
	return g, err
}

// ParameterSpec is an AWS::SSM::Parameter.
type ParameterSpec struct {
	LogicalID                                      string
	Name, Type, Value, Description, Tier, DataType string
}

// SSMParameters returns the template's SSM parameters in file order (those whose Condition holds),
// intrinsic functions evaluated with r.
func (t *Template) SSMParameters(r Resolver) ([]ParameterSpec, error) {
	e := evaluator{t: t, r: r}
	var out []ParameterSpec
	for _, id := range t.ids("AWS::SSM::Parameter") {
		if ok, err := t.present(e, id); err != nil || !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		p := ParameterSpec{LogicalID: id}
		fields := map[string]*string{"Name": &p.Name, "Type": &p.Type, "Value": &p.Value, "Description": &p.Description, "Tier": &p.Tier, "DataType": &p.DataType}
		var err error
		eachKey(t.props(id), func(k string, v *yaml.Node) {
			if err != nil {
				return
			}
			if f, ok := fields[k]; ok {
				*f, err = e.str(v)
				return
			}
			if k != "Tags" && k != "AllowedPattern" && k != "Policies" {
				err = t.errorf(v, "parameter %s: property %s is not modelled by the local world", id, k)
			}
		})
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// present reports whether resource id is created: its Condition holds, or it has none.
func (t *Template) present(e evaluator, id string) (bool, error) {
	c := child(t.resources[id], "Condition")
	if c == nil {
		return true, nil
	}
	return e.condition(c, c.Value)
}
