package lambdasim

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"
)

// Resolver gives the values CloudFormation would give the template's intrinsic functions in one
// deployment. ok is false when the resolver does not know the name; the evaluator then reports
// the template line and what is missing.
type Resolver interface {
	// Ref is what !Ref name gives: a parameter's value (a list parameter's members joined by ","),
	// a resource's physical id (a queue's URL, a table's name, a secret's ARN), or a pseudo
	// parameter's value (AWS::StackName, AWS::Region, AWS::AccountId, AWS::Partition, ...).
	Ref(name string) (value string, ok bool)
	// GetAtt is what !GetAtt resource.attribute gives, e.g. ("JobQueue", "Arn") or
	// ("RunnerImageLinuxX64", "Outputs.ImagePipelineArn").
	GetAtt(resource, attribute string) (value string, ok bool)
}

// Values is a Resolver from plain maps: the pseudo parameters of one deployment, the parameter
// values given to it, and the physical ids and attributes of resources the local world does not
// create (a nested stack's outputs, for one).
type Values struct {
	// StackName is required: AWS::StackName.
	StackName string
	// Region is optional, default us-east-1: AWS::Region.
	Region string
	// AccountID is optional, default moto's 123456789012: AWS::AccountId.
	AccountID string
	// Parameters are the template parameter values given (a list as "a,b"); optional. A parameter
	// not given takes its Default, unless its type reads the value from SSM
	// (AWS::SSM::Parameter::Value<...>): that Default names a parameter, not a value.
	Parameters map[string]string
	// Refs maps a logical id to its physical id; optional.
	Refs map[string]string
	// Attributes maps "LogicalId.Attribute" to its value; optional.
	Attributes map[string]string
}

// Ref implements Resolver.
func (v Values) Ref(name string) (string, bool) {
	switch name {
	case "AWS::StackName":
		return v.StackName, v.StackName != ""
	case "AWS::Region":
		return cmpOr(v.Region, defaultRegion), true
	case "AWS::AccountId":
		return cmpOr(v.AccountID, motoAccountID), true
	case "AWS::Partition":
		return "aws", true
	case "AWS::URLSuffix":
		return "amazonaws.com", true
	case "AWS::StackId":
		if v.StackName == "" {
			return "", false
		}
		return fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/00000000-0000-0000-0000-000000000000",
			cmpOr(v.Region, defaultRegion), cmpOr(v.AccountID, motoAccountID), v.StackName), true
	}
	if s, ok := v.Parameters[name]; ok {
		return s, true
	}
	s, ok := v.Refs[name]
	return s, ok
}

// GetAtt implements Resolver.
func (v Values) GetAtt(resource, attribute string) (string, bool) {
	s, ok := v.Attributes[resource+"."+attribute]
	return s, ok
}

// Chain returns a Resolver that asks each of rs in order and answers with the first that knows.
func Chain(rs ...Resolver) Resolver { return chain(rs) }

type chain []Resolver

func (c chain) Ref(name string) (string, bool) {
	for _, r := range c {
		if s, ok := r.Ref(name); ok {
			return s, true
		}
	}
	return "", false
}

func (c chain) GetAtt(resource, attribute string) (string, bool) {
	for _, r := range c {
		if s, ok := r.GetAtt(resource, attribute); ok {
			return s, true
		}
	}
	return "", false
}

const (
	defaultRegion = "us-east-1"
	motoAccountID = "123456789012"
)

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// noValue is what !Ref AWS::NoValue evaluates to: the key or item holding it is dropped.
type noValue struct{}

// evaluator evaluates intrinsic functions (short and long forms) against one Resolver. Values are
// string, []any (a list), map[string]any, or noValue.
type evaluator struct {
	t *Template
	r Resolver
}

// errorf reports an evaluation error at n's line in the template.
func (e evaluator) errorf(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", e.t.name, n.Line, fmt.Sprintf(format, args...))
}

// intrinsic returns the function name and argument node of n when n is an intrinsic function
// call: a short-form tag (!Ref X) or a one-key mapping in long form (Ref: X, Fn::Join: [...]).
func intrinsic(n *yaml.Node) (fn string, arg *yaml.Node, ok bool) {
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		fn = strings.TrimPrefix(n.Tag, "!")
		if fn != "Ref" && fn != "Condition" {
			fn = "Fn::" + fn
		}
		// The argument is the node itself, without its tag.
		arg := *n
		arg.Tag = ""
		switch n.Kind {
		case yaml.ScalarNode:
			arg.Tag = "!!str"
		case yaml.SequenceNode:
			arg.Tag = "!!seq"
		case yaml.MappingNode:
			arg.Tag = "!!map"
		}
		return fn, &arg, true
	}
	if n.Kind == yaml.MappingNode && len(n.Content) == 2 {
		k := n.Content[0].Value
		if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
			return k, n.Content[1], true
		}
	}
	return "", nil, false
}

// value evaluates n.
func (e evaluator) value(n *yaml.Node) (any, error) {
	if n.Kind == yaml.AliasNode {
		return e.value(n.Alias)
	}
	if fn, arg, ok := intrinsic(n); ok {
		return e.call(n, fn, arg)
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := e.value(c)
			if err != nil {
				return nil, err
			}
			if _, drop := v.(noValue); !drop {
				out = append(out, v)
			}
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := e.value(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			if _, drop := v.(noValue); !drop {
				out[n.Content[i].Value] = v
			}
		}
		return out, nil
	}
	return nil, e.errorf(n, "cannot evaluate a YAML node of kind %v", n.Kind)
}

// str evaluates n to a string.
func (e evaluator) str(n *yaml.Node) (string, error) {
	v, err := e.value(n)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", e.errorf(n, "want a string, have %s", describe(v))
	}
	return s, nil
}

// list evaluates n to a list of strings.
func (e evaluator) list(n *yaml.Node) ([]string, error) {
	v, err := e.value(n)
	if err != nil {
		return nil, err
	}
	items, ok := v.([]any)
	if !ok {
		return nil, e.errorf(n, "want a list, have %s", describe(v))
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, e.errorf(n, "want a list of strings, have an item that is %s", describe(it))
		}
		out = append(out, s)
	}
	return out, nil
}

func describe(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case noValue:
		return "AWS::NoValue"
	}
	return fmt.Sprintf("%T", v)
}

// args returns the items of a sequence argument, which must have want items (any count when want
// is 0).
func (e evaluator) args(at *yaml.Node, fn string, arg *yaml.Node, want int) ([]*yaml.Node, error) {
	if arg.Kind != yaml.SequenceNode || want > 0 && len(arg.Content) != want {
		return nil, e.errorf(at, "%s takes a list of %d arguments", fn, want)
	}
	return arg.Content, nil
}

func (e evaluator) call(at *yaml.Node, fn string, arg *yaml.Node) (any, error) {
	switch fn {
	case "Ref":
		return e.ref(at, arg.Value)
	case "Fn::GetAtt":
		return e.getAtt(at, arg)
	case "Fn::Sub":
		return e.sub(at, arg)
	case "Fn::Join":
		a, err := e.args(at, fn, arg, 2)
		if err != nil {
			return nil, err
		}
		sep, err := e.str(a[0])
		if err != nil {
			return nil, err
		}
		items, err := e.list(a[1])
		if err != nil {
			return nil, err
		}
		return strings.Join(items, sep), nil
	case "Fn::Select":
		a, err := e.args(at, fn, arg, 2)
		if err != nil {
			return nil, err
		}
		idx, err := e.str(a[0])
		if err != nil {
			return nil, err
		}
		i, err := strconv.Atoi(idx)
		if err != nil {
			return nil, e.errorf(at, "Fn::Select index %q is not a number", idx)
		}
		items, err := e.list(a[1])
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= len(items) {
			return nil, e.errorf(at, "Fn::Select index %d out of range: the list has %d items", i, len(items))
		}
		return items[i], nil
	case "Fn::Split":
		a, err := e.args(at, fn, arg, 2)
		if err != nil {
			return nil, err
		}
		sep, err := e.str(a[0])
		if err != nil {
			return nil, err
		}
		s, err := e.str(a[1])
		if err != nil {
			return nil, err
		}
		var out []any
		for _, p := range strings.Split(s, sep) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::If":
		a, err := e.args(at, fn, arg, 3)
		if err != nil {
			return nil, err
		}
		holds, err := e.condition(a[0], a[0].Value)
		if err != nil {
			return nil, err
		}
		if holds {
			return e.value(a[1])
		}
		return e.value(a[2])
	case "Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition":
		holds, err := e.test(at, fn, arg)
		if err != nil {
			return nil, err
		}
		return strconv.FormatBool(holds), nil
	}
	return nil, e.errorf(at, "intrinsic function %s is not supported by the local world", fn)
}

// ref resolves !Ref name: AWS::NoValue, then the resolver, then a parameter's Default.
func (e evaluator) ref(at *yaml.Node, name string) (any, error) {
	if name == "AWS::NoValue" {
		return noValue{}, nil
	}
	p, isParam := e.t.params[name]
	s, ok := e.r.Ref(name)
	if !ok && isParam && p.hasDefault && !p.fromSSM() {
		s, ok = p.def, true
	}
	if !ok {
		switch {
		case isParam && p.fromSSM():
			return nil, e.errorf(at, "!Ref %s: parameter of type %s has no value given (its default %q names an SSM parameter, which the local world does not read)", name, p.typ, p.def)
		case isParam:
			return nil, e.errorf(at, "!Ref %s: parameter has no value given and no default", name)
		case strings.HasPrefix(name, "AWS::"):
			return nil, e.errorf(at, "!Ref %s: pseudo parameter not known to the resolver", name)
		case e.t.resourceType(name) != "":
			return nil, e.errorf(at, "!Ref %s: resource (%s) not created in the local world and not given", name, e.t.resourceType(name))
		}
		return nil, e.errorf(at, "!Ref %s: no parameter, resource or pseudo parameter of that name", name)
	}
	if isParam && p.isList() {
		var out []any
		for _, it := range strings.Split(s, ",") {
			out = append(out, it)
		}
		return out, nil
	}
	return s, nil
}

func (e evaluator) getAtt(at *yaml.Node, arg *yaml.Node) (any, error) {
	var res, attr string
	switch arg.Kind {
	case yaml.ScalarNode:
		res, attr, _ = strings.Cut(arg.Value, ".")
	case yaml.SequenceNode:
		if len(arg.Content) != 2 {
			return nil, e.errorf(at, "Fn::GetAtt takes [resource, attribute]")
		}
		res = arg.Content[0].Value
		var err error
		if attr, err = e.str(arg.Content[1]); err != nil {
			return nil, err
		}
	}
	if res == "" || attr == "" {
		return nil, e.errorf(at, "Fn::GetAtt %q: want Resource.Attribute", arg.Value)
	}
	return e.attribute(at, res, attr)
}

func (e evaluator) attribute(at *yaml.Node, res, attr string) (string, error) {
	if s, ok := e.r.GetAtt(res, attr); ok {
		return s, nil
	}
	if typ := e.t.resourceType(res); typ != "" {
		return "", e.errorf(at, "!GetAtt %s.%s: resource (%s) not created in the local world and the attribute not given", res, attr, typ)
	}
	return "", e.errorf(at, "!GetAtt %s.%s: no resource %s in the template", res, attr, res)
}

var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

// sub evaluates Fn::Sub: "string" or [string, {var: value}].
func (e evaluator) sub(at *yaml.Node, arg *yaml.Node) (any, error) {
	format := arg
	vars := map[string]string{}
	if arg.Kind == yaml.SequenceNode {
		if len(arg.Content) != 2 || arg.Content[1].Kind != yaml.MappingNode {
			return nil, e.errorf(at, "Fn::Sub takes a string or [string, {variables}]")
		}
		format = arg.Content[0]
		m := arg.Content[1]
		for i := 0; i+1 < len(m.Content); i += 2 {
			s, err := e.str(m.Content[i+1])
			if err != nil {
				return nil, err
			}
			vars[m.Content[i].Value] = s
		}
	}
	if format.Kind != yaml.ScalarNode {
		return nil, e.errorf(at, "Fn::Sub: the format must be a string")
	}
	var firstErr error
	out := subVar.ReplaceAllStringFunc(format.Value, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") { // ${!Literal} stays ${Literal}
			return "${" + name[1:] + "}"
		}
		if s, ok := vars[name]; ok {
			return s
		}
		var (
			s   string
			err error
		)
		if res, attr, dotted := strings.Cut(name, "."); dotted && !strings.HasPrefix(name, "AWS::") {
			s, err = e.attribute(at, res, attr)
		} else {
			var v any
			if v, err = e.ref(at, name); err == nil {
				var isStr bool
				if s, isStr = v.(string); !isStr {
					err = e.errorf(at, "Fn::Sub ${%s}: is %s, not a string", name, describe(v))
				}
			}
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return s
	})
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// condition evaluates the template condition called name.
func (e evaluator) condition(at *yaml.Node, name string) (bool, error) {
	n, ok := e.t.conditions[name]
	if !ok {
		return false, e.errorf(at, "no condition %q in the template", name)
	}
	fn, arg, ok := intrinsic(n)
	if !ok {
		return false, e.errorf(n, "condition %s is not a condition function", name)
	}
	return e.test(n, fn, arg)
}

// test evaluates a condition function.
func (e evaluator) test(at *yaml.Node, fn string, arg *yaml.Node) (bool, error) {
	switch fn {
	case "Condition":
		return e.condition(at, arg.Value)
	case "Fn::Equals":
		a, err := e.args(at, fn, arg, 2)
		if err != nil {
			return false, err
		}
		l, err := e.value(a[0])
		if err != nil {
			return false, err
		}
		r, err := e.value(a[1])
		if err != nil {
			return false, err
		}
		return equal(l, r), nil
	case "Fn::Not", "Fn::And", "Fn::Or":
		a, err := e.args(at, fn, arg, 0)
		if err != nil {
			return false, err
		}
		if fn == "Fn::Not" && len(a) != 1 {
			return false, e.errorf(at, "Fn::Not takes one condition")
		}
		results := make([]bool, 0, len(a))
		for _, c := range a {
			cfn, carg, ok := intrinsic(c)
			if !ok {
				return false, e.errorf(c, "%s: want a condition function", fn)
			}
			holds, err := e.test(c, cfn, carg)
			if err != nil {
				return false, err
			}
			results = append(results, holds)
		}
		switch fn {
		case "Fn::Not":
			return !results[0], nil
		case "Fn::And":
			return !slices.Contains(results, false), nil
		}
		return slices.Contains(results, true), nil
	}
	return false, e.errorf(at, "%s is not a condition function", fn)
}

func equal(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []any:
		y, ok := b.([]any)
		return ok && slices.EqualFunc(x, y, equal)
	case map[string]any:
		y, ok := b.(map[string]any)
		return ok && maps.EqualFunc(x, y, equal)
	}
	return false
}
