package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v4"

	"github.com/spotrunner/spotrunner/internal/world"
)

// cfnTemplate is a parsed CloudFormation template: its top-level mapping, with the short-form
// intrinsic functions (!Ref, !Sub, !If, ...) kept as node tags. Long forms (Fn::If) are not
// understood; the templates use the short ones.
type cfnTemplate struct {
	root *yaml.Node
}

func loadTemplate(t *testing.T, rel string) cfnTemplate {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(world.Root(), rel))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse %s: %v", rel, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("%s: not a mapping", rel)
	}
	return cfnTemplate{root: doc.Content[0]}
}

// keys are the keys of mapping n, in order.
func keys(n *yaml.Node) []string {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, n.Content[i].Value)
	}
	return out
}

func (c cfnTemplate) section(name string) *yaml.Node { return child(c.root, name) }

func (c cfnTemplate) resource(id string) *yaml.Node { return child(c.section("Resources"), id) }

func (c cfnTemplate) typeOf(id string) string {
	if typ := child(c.resource(id), "Type"); typ != nil {
		return typ.Value
	}
	return ""
}

func (c cfnTemplate) prop(id, name string) *yaml.Node {
	return child(child(c.resource(id), "Properties"), name)
}

// params are the parameter values of one deployment: the given ones over the defaults.
func (c cfnTemplate) params(given map[string]string) map[string]string {
	out := map[string]string{}
	for _, p := range keys(c.section("Parameters")) {
		if d := child(child(c.section("Parameters"), p), "Default"); d != nil {
			out[p] = d.Value
		}
	}
	for k, v := range given {
		out[k] = v
	}
	return out
}

// condition evaluates the named condition under params.
func (c cfnTemplate) condition(t *testing.T, name string, params map[string]string) bool {
	t.Helper()
	n := child(c.section("Conditions"), name)
	if n == nil {
		t.Fatalf("no condition %s", name)
	}
	return c.eval(t, n, params)
}

func (c cfnTemplate) eval(t *testing.T, n *yaml.Node, params map[string]string) bool {
	t.Helper()
	switch n.Tag {
	case "!Equals":
		return c.scalar(t, n.Content[0], params) == c.scalar(t, n.Content[1], params)
	case "!Not":
		return !c.eval(t, n.Content[0], params)
	case "!And", "!Or":
		for _, x := range n.Content {
			if c.eval(t, x, params) == (n.Tag == "!Or") {
				return n.Tag == "!Or"
			}
		}
		return n.Tag == "!And"
	case "!Condition":
		return c.condition(t, n.Value, params)
	}
	t.Fatalf("line %d: condition function %q not understood", n.Line, n.Tag)
	return false
}

// scalar is the value of a plain scalar or of a !Ref to a parameter.
func (c cfnTemplate) scalar(t *testing.T, n *yaml.Node, params map[string]string) string {
	t.Helper()
	if n.Tag == "!Ref" {
		v, ok := params[n.Value]
		if !ok {
			t.Fatalf("line %d: !Ref %s is no parameter with a value", n.Line, n.Value)
		}
		return v
	}
	if n.Kind != yaml.ScalarNode || strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		t.Fatalf("line %d: %q is not a plain value", n.Line, n.Tag)
	}
	return n.Value
}

// resolve picks the branch of each !If (outermost first) under params.
func (c cfnTemplate) resolve(t *testing.T, n *yaml.Node, params map[string]string) *yaml.Node {
	t.Helper()
	for n != nil && n.Tag == "!If" {
		if len(n.Content) != 3 {
			t.Fatalf("line %d: !If needs [condition, then, else]", n.Line)
		}
		if c.condition(t, n.Content[0].Value, params) {
			n = n.Content[1]
		} else {
			n = n.Content[2]
		}
	}
	return n
}

// present reports whether resource id is created under params (its Condition holds, or it has
// none).
func (c cfnTemplate) present(t *testing.T, id string, params map[string]string) bool {
	t.Helper()
	cond := child(c.resource(id), "Condition")
	return cond == nil || c.condition(t, cond.Value, params)
}

// ref is the logical ID n refers to (!Ref X or !GetAtt X.Attr), or "".
func ref(n *yaml.Node) string {
	switch {
	case n == nil:
		return ""
	case n.Tag == "!Ref":
		return n.Value
	case n.Tag == "!GetAtt" && n.Kind == yaml.ScalarNode:
		id, _, _ := strings.Cut(n.Value, ".")
		return id
	}
	return ""
}

// tag is the value node of the tag key in resource id's Tags, or nil.
func (c cfnTemplate) tag(id, key string) *yaml.Node {
	tags := c.prop(id, "Tags")
	if tags == nil || tags.Kind != yaml.SequenceNode {
		return nil
	}
	for _, tg := range tags.Content {
		if k := child(tg, "Key"); k != nil && k.Value == key {
			return child(tg, "Value")
		}
	}
	return nil
}

// foundationOutput is what the app stack needs from the foundation: the app stack parameter
// (type as template.yaml declares it: an SSM parameter type) filled from the foundation's SSM
// parameter /spotrunner/SpotRunnerFoundationStack/<name>, which holds the output of that name.
var foundationOutputs = []struct {
	name     string
	appType  string
	joinList bool // a list parameter: the output is the members joined by ","
}{
	{name: "PrivateKeySecretArn", appType: "AWS::SSM::Parameter::Value<String>"},
	{name: "RunnerSubnetIds", appType: "AWS::SSM::Parameter::Value<List<AWS::EC2::Subnet::Id>>", joinList: true},
	{name: "RunnerSecurityGroupId", appType: "AWS::SSM::Parameter::Value<AWS::EC2::SecurityGroup::Id>"},
}

// TestFoundationOutputs: fixtures are template.yaml and sam/foundation.yaml. Each app stack
// parameter that says it is an output of SpotRunnerFoundationStack is one (same name), of a form
// its type takes under either NatGateway value (a list parameter takes "a,b"), and is exported
// under the stack's name; and the foundation writes the same value to the SSM parameter the app
// parameter names by default (a StringList for a list), so `sam deploy` asks nothing for it.
func TestFoundationOutputs(t *testing.T) {
	t.Parallel()
	app := loadTemplate(t, "template.yaml")
	found := loadTemplate(t, "sam/foundation.yaml")

	var fromFoundation, listed []string
	for _, p := range keys(app.section("Parameters")) {
		d := child(child(app.section("Parameters"), p), "Description")
		if d != nil && strings.Contains(strings.ToLower(d.Value), "output of spotrunnerfoundationstack") {
			fromFoundation = append(fromFoundation, p)
		}
	}
	for _, o := range foundationOutputs {
		listed = append(listed, o.name)
	}
	slices.Sort(fromFoundation)
	slices.Sort(listed)
	if diff := cmp.Diff(listed, fromFoundation); diff != "" {
		t.Errorf("app parameters described as foundation outputs (-foundationOutputs +template.yaml):\n%s", diff)
	}

	for _, o := range foundationOutputs {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			param := child(app.section("Parameters"), o.name)
			if param == nil {
				t.Fatalf("template.yaml has no parameter %s", o.name)
			}
			if diff := cmp.Diff(o.appType, child(param, "Type").Value); diff != "" {
				t.Errorf("template.yaml %s type (-want +got):\n%s", o.name, diff)
			}
			out := child(found.section("Outputs"), o.name)
			if out == nil {
				t.Fatalf("sam/foundation.yaml has no output %s", o.name)
			}
			if d := child(param, "Default"); d == nil || d.Value != "/spotrunner/SpotRunnerFoundationStack/"+o.name {
				t.Errorf("template.yaml %s: default %v, want /spotrunner/SpotRunnerFoundationStack/%s", o.name, d, o.name)
			}
			ssmParam := found.resource(o.name + "Parameter")
			if ssmParam == nil || found.typeOf(o.name+"Parameter") != "AWS::SSM::Parameter" {
				t.Fatalf("sam/foundation.yaml has no AWS::SSM::Parameter %sParameter", o.name)
			}
			if n := found.prop(o.name+"Parameter", "Name"); n == nil || n.Tag != "!Sub" || n.Value != "/spotrunner/${AWS::StackName}/"+o.name {
				t.Errorf("%sParameter: name %v, want !Sub /spotrunner/${AWS::StackName}/%s", o.name, n, o.name)
			}
			wantType := map[bool]string{true: "StringList", false: "String"}[o.joinList]
			if ty := found.prop(o.name+"Parameter", "Type"); ty == nil || ty.Value != wantType {
				t.Errorf("%sParameter: type %v, want %s", o.name, ty, wantType)
			}
			for _, nat := range []string{"true", "false"} {
				params := found.params(map[string]string{"NatGateway": nat})
				var want, got strings.Builder
				if err := yaml.NewEncoder(&want).Encode(found.resolve(t, child(out, "Value"), params)); err != nil {
					t.Fatal(err)
				}
				if err := yaml.NewEncoder(&got).Encode(found.resolve(t, found.prop(o.name+"Parameter", "Value"), params)); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want.String(), got.String()); diff != "" {
					t.Errorf("NatGateway=%s: %sParameter's value against output %s (-output +parameter):\n%s", nat, o.name, o.name, diff)
				}
			}
			for _, nat := range []string{"true", "false"} {
				v := found.resolve(t, child(out, "Value"), found.params(map[string]string{"NatGateway": nat}))
				var form string
				switch {
				case v.Tag == "!Join" && len(v.Content) == 2 && v.Content[0].Value == ",":
					form = "join"
				case ref(v) != "":
					form = "ref"
				default:
					form = v.Tag
				}
				want := "ref"
				if o.joinList {
					want = "join"
				}
				if diff := cmp.Diff(want, form); diff != "" {
					t.Errorf("NatGateway=%s: value of output %s (-want +got):\n%s", nat, o.name, diff)
				}
			}
		})
	}

	t.Run("exports", func(t *testing.T) {
		t.Parallel()
		outputs := found.section("Outputs")
		for _, name := range keys(outputs) {
			got := ""
			if n := child(child(child(outputs, name), "Export"), "Name"); n != nil && n.Tag == "!Sub" {
				got = n.Value
			}
			if diff := cmp.Diff("${AWS::StackName}-"+name, got); diff != "" {
				t.Errorf("output %s: export name (-want +got):\n%s", name, diff)
			}
		}
	})
}

// TestFoundationNatGateway: fixture is sam/foundation.yaml, deployed with NatGateway true and
// false. With it there is one NAT gateway with one Elastic IP, in a public subnet, and the runner
// subnets (RunnerSubnetIds) are the private ones, with their default route through the NAT; without
// it there is no NAT, no Elastic IP and no route to one, and the runners are in the public subnets,
// which give them public IPs for their way out through the internet gateway.
func TestFoundationNatGateway(t *testing.T) {
	t.Parallel()
	f := loadTemplate(t, "sam/foundation.yaml")
	tests := []struct {
		natGateway    string
		wantCounts    map[string]int // resources of these types, and routes through a NAT
		wantRunners   []string
		wantRunnerWay string
	}{
		{
			natGateway:    "true",
			wantCounts:    map[string]int{"AWS::EC2::NatGateway": 1, "AWS::EC2::EIP": 1, "route via NAT": 2},
			wantRunners:   []string{"PrivateSubnetA", "PrivateSubnetB"},
			wantRunnerWay: "NAT gateway",
		},
		{
			natGateway:    "false",
			wantCounts:    map[string]int{"AWS::EC2::NatGateway": 0, "AWS::EC2::EIP": 0, "route via NAT": 0},
			wantRunners:   []string{"PublicSubnetA", "PublicSubnetB"},
			wantRunnerWay: "internet gateway, public IP",
		},
	}
	for _, tt := range tests {
		t.Run("NatGateway="+tt.natGateway, func(t *testing.T) {
			t.Parallel()
			params := f.params(map[string]string{"NatGateway": tt.natGateway})
			counts := map[string]int{}
			for typ := range tt.wantCounts {
				counts[typ] = 0
			}
			var nats []string
			for _, id := range keys(f.section("Resources")) {
				if !f.present(t, id, params) {
					continue
				}
				typ := f.typeOf(id)
				if _, ok := counts[typ]; ok {
					counts[typ]++
				}
				if typ == "AWS::EC2::Route" && f.prop(id, "NatGatewayId") != nil {
					counts["route via NAT"]++
				}
				if typ == "AWS::EC2::NatGateway" {
					nats = append(nats, id)
				}
			}
			if diff := cmp.Diff(tt.wantCounts, counts); diff != "" {
				t.Errorf("resources (-want +got):\n%s", diff)
			}
			for _, nat := range nats {
				if way := f.wayOut(t, ref(f.prop(nat, "SubnetId")), params); !strings.HasPrefix(way, "internet gateway") {
					t.Errorf("%s: its subnet's way out is %q, not the internet gateway", nat, way)
				}
			}

			out := f.resolve(t, child(child(f.section("Outputs"), "RunnerSubnetIds"), "Value"), params)
			if out.Tag != "!Join" || len(out.Content) != 2 {
				t.Fatalf("RunnerSubnetIds is not !Join [\",\", [...]]")
			}
			var runners []string
			for _, s := range f.resolve(t, out.Content[1], params).Content {
				runners = append(runners, ref(s))
			}
			if diff := cmp.Diff(tt.wantRunners, runners); diff != "" {
				t.Errorf("RunnerSubnetIds (-want +got):\n%s", diff)
			}
			for _, s := range runners {
				if diff := cmp.Diff(tt.wantRunnerWay, f.wayOut(t, s, params)); diff != "" {
					t.Errorf("%s: way out to the internet (-want +got):\n%s", s, diff)
				}
			}
		})
	}
}

// wayOut describes how instances in subnet reach the internet under params: through a NAT
// gateway, through the internet gateway with or without a public IP, or not at all.
func (c cfnTemplate) wayOut(t *testing.T, subnet string, params map[string]string) string {
	t.Helper()
	var tables []string
	for _, id := range keys(c.section("Resources")) {
		if c.typeOf(id) == "AWS::EC2::SubnetRouteTableAssociation" && c.present(t, id, params) &&
			ref(c.prop(id, "SubnetId")) == subnet {
			tables = append(tables, ref(c.prop(id, "RouteTableId")))
		}
	}
	if len(tables) != 1 {
		t.Fatalf("%s: %d route tables", subnet, len(tables))
	}
	for _, id := range keys(c.section("Resources")) {
		if c.typeOf(id) != "AWS::EC2::Route" || !c.present(t, id, params) ||
			ref(c.prop(id, "RouteTableId")) != tables[0] {
			continue
		}
		if d := c.prop(id, "DestinationCidrBlock"); d == nil || d.Value != "0.0.0.0/0" {
			continue
		}
		if nat := ref(c.prop(id, "NatGatewayId")); nat != "" && c.present(t, nat, params) {
			return "NAT gateway"
		}
		if gw := ref(c.prop(id, "GatewayId")); c.typeOf(gw) == "AWS::EC2::InternetGateway" {
			if m := c.prop(subnet, "MapPublicIpOnLaunch"); m != nil && c.resolve(t, m, params).Value == "true" {
				return "internet gateway, public IP"
			}
			return "internet gateway, no public IP"
		}
	}
	return "none"
}

// TestFoundation: fixture is sam/foundation.yaml. The runner security group lets nothing in and
// everything out; the private-key secret is created without a value and outlives the stack;
// the subnets span two availability zones; every resource is named after the stack.
func TestFoundation(t *testing.T) {
	t.Parallel()
	f := loadTemplate(t, "sam/foundation.yaml")
	resources := f.section("Resources")
	tests := []struct {
		name string
		got  func() any
		want any
	}{
		{
			name: "no ingress rule anywhere",
			got: func() any {
				var in []string
				for _, id := range keys(resources) {
					if f.typeOf(id) == "AWS::EC2::SecurityGroupIngress" || f.prop(id, "SecurityGroupIngress") != nil {
						in = append(in, id)
					}
				}
				return in
			},
			want: []string(nil),
		},
		{
			name: "runner security group egress",
			got: func() any {
				var out []string
				for _, r := range f.prop("RunnerSecurityGroup", "SecurityGroupEgress").Content {
					out = append(out, child(r, "IpProtocol").Value+" "+child(r, "CidrIp").Value)
				}
				return out
			},
			want: []string{"-1 0.0.0.0/0"},
		},
		{
			name: "runner security group says so",
			got: func() any {
				d := strings.ToLower(f.prop("RunnerSecurityGroup", "GroupDescription").Value)
				return strings.Contains(d, "no inbound") && strings.Contains(d, "all outbound")
			},
			want: true,
		},
		{
			name: "runner security group in the VPC",
			got:  func() any { return ref(f.prop("RunnerSecurityGroup", "VpcId")) },
			want: "Vpc",
		},
		{
			name: "secret retained",
			got: func() any {
				r := f.resource("PrivateKeySecret")
				return []string{f.typeOf("PrivateKeySecret"), child(r, "DeletionPolicy").Value, child(r, "UpdateReplacePolicy").Value}
			},
			want: []string{"AWS::SecretsManager::Secret", "Retain", "Retain"},
		},
		{
			name: "secret created without a value",
			got: func() any {
				return []bool{f.prop("PrivateKeySecret", "SecretString") != nil, f.prop("PrivateKeySecret", "GenerateSecretString") != nil}
			},
			want: []bool{false, false},
		},
		{
			name: "command that fills the secret",
			got: func() any {
				v := child(child(f.section("Outputs"), "PrivateKeySecretCommand"), "Value")
				return v.Tag + " " + v.Value
			},
			want: "!Sub aws secretsmanager put-secret-value --secret-id ${PrivateKeySecret} --secret-string file://app.private-key.pem",
		},
		{
			name: "subnet availability zones",
			got: func() any {
				azs := map[string]string{}
				for _, id := range keys(resources) {
					if f.typeOf(id) != "AWS::EC2::Subnet" {
						continue
					}
					az := f.prop(id, "AvailabilityZone")
					if az.Tag != "!Select" || len(az.Content) != 2 || az.Content[1].Tag != "!GetAZs" || az.Content[1].Value != "" {
						azs[id] = "not !Select [i, !GetAZs \"\"]"
						continue
					}
					azs[id] = az.Content[0].Value
				}
				return azs
			},
			want: map[string]string{"PublicSubnetA": "0", "PublicSubnetB": "1", "PrivateSubnetA": "0", "PrivateSubnetB": "1"},
		},
		{
			name: "resources not named after the stack",
			got: func() any {
				// Types that take no tags (SSM parameters are paths, checked as such).
				untagged := map[string]bool{
					"AWS::EC2::VPCGatewayAttachment": true, "AWS::EC2::Route": true,
					"AWS::EC2::SubnetRouteTableAssociation": true,
				}
				var bad []string
				for _, id := range keys(resources) {
					if untagged[f.typeOf(id)] {
						continue
					}
					if f.typeOf(id) == "AWS::SSM::Parameter" { // a path, untagged: names are its identity
						if n := f.prop(id, "Name"); n == nil || n.Tag != "!Sub" || !strings.HasPrefix(n.Value, "/spotrunner/${AWS::StackName}/") {
							bad = append(bad, id+" Name")
						}
						continue
					}
					if n := f.tag(id, "Name"); n == nil || n.Tag != "!Sub" || !strings.HasPrefix(n.Value, "${AWS::StackName}-") {
						bad = append(bad, id+" tag Name")
					}
					for _, p := range []string{"Name", "GroupName"} {
						if n := f.prop(id, p); n != nil && (n.Tag != "!Sub" || !strings.HasPrefix(n.Value, "${AWS::StackName}-")) {
							bad = append(bad, id+" "+p)
						}
					}
				}
				return bad
			},
			want: []string(nil),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, tt.got()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
