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

// calls is, per function, every AWS action its code makes (SDK calls through libs/ and the
// service itself), maintained by hand with the code: a call added without its permission, or a
// permission left after its call went, fails TestFunctionPolicies. The SQS event source's own
// permissions (receive, delete) come from SAM's SQS event and are not listed here.
var calls = map[string][]string{
	"IngestFunction": {
		"secretsmanager:GetSecretValue", // libs/secrets: the webhook secret
		"sqs:SendMessage",               // libs/queue: job events
	},
	"ProvisionerFunction": {
		"dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem", // libs/state (transactions are checked per item)
		"ec2:CreateFleet", "ec2:CreateTags", "ec2:DescribeInstances", "ec2:RunInstances", "ec2:TerminateInstances", // libs/fleet
		"iam:CreateServiceLinkedRole", "iam:PassRole", // the first spot launch; the runner instance profile
		"kms:Decrypt",                                    // a private-key secret under a customer key (optional)
		"secretsmanager:GetSecretValue",                  // the App's private key
		"sqs:ChangeMessageVisibility", "sqs:SendMessage", // backoff, retries and relaunches
		"ssm:AddTagsToResource", "ssm:DeleteParameter", "ssm:GetParameter", "ssm:PutParameter", // presets and JIT configs
	},
	"AmiWatcherFunction": {
		"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
		"imagebuilder:GetImage", "imagebuilder:StartImagePipelineExecution",
		"ssm:DeleteParameter", "ssm:PutParameter",
	},
	"StatusFunction": {
		"dynamodb:Query", "kms:Decrypt", "secretsmanager:GetSecretValue",
	},
	"ReaperFunction": {
		"dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem",
		"ec2:DescribeInstances", "ec2:TerminateInstances",
		"kms:Decrypt", "secretsmanager:GetSecretValue",
		"sqs:SendMessage",
		"ssm:DeleteParameter", "ssm:DescribeParameters",
	},
}

// TestFunctionPolicies: fixture is template.yaml. Each function's own policy statements allow
// exactly the actions its code calls (calls), never a `*` action, and a `*` resource only in a
// statement whose comment says why (actions without resource-level permissions).
func TestFunctionPolicies(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(world.Root(), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse template.yaml: %v", err)
	}
	resources := child(doc.Content[0], "Resources")
	if resources == nil {
		t.Fatal("template.yaml has no Resources")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(resources.Content); i += 2 {
		id, res := resources.Content[i].Value, resources.Content[i+1]
		if typ := child(res, "Type"); typ == nil || typ.Value != "AWS::Serverless::Function" {
			continue
		}
		seen[id] = true
		want, ok := calls[id]
		if !ok {
			t.Errorf("%s: no entry in calls: list the AWS actions its code makes", id)
			continue
		}
		var got []string
		for _, st := range statements(child(child(res, "Properties"), "Policies")) {
			for _, a := range scalars(child(st, "Action")) {
				if strings.Contains(a, "*") {
					t.Errorf("%s: wildcard action %q", id, a)
				}
				got = append(got, a)
			}
			for _, r := range scalars(child(st, "Resource")) {
				if r == "*" && !commented(st) {
					t.Errorf("%s: statement %s has Resource \"*\" without a comment saying why", id, sid(st))
				}
			}
		}
		slices.Sort(got)
		got = slices.Compact(got)
		w := slices.Clone(want)
		slices.Sort(w)
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("%s: allowed actions against the calls its code makes (-calls +allowed):\n%s", id, diff)
		}
	}
	for id := range calls {
		if !seen[id] {
			t.Errorf("calls lists %s, which template.yaml does not have", id)
		}
	}
}

// child is the value of key in mapping node n, or nil.
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

// statements are the policy statements under a function's Policies, including those inside an
// !If (both branches), skipping AWS::NoValue.
func statements(policies *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil {
			return
		}
		switch {
		case n.Kind == yaml.SequenceNode && n.Tag == "!If":
			for _, c := range n.Content[1:] {
				walk(c)
			}
		case n.Kind == yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		case n.Kind == yaml.MappingNode && child(n, "Statement") != nil:
			walk(child(n, "Statement"))
		case n.Kind == yaml.MappingNode && child(n, "Effect") != nil:
			out = append(out, n)
		}
	}
	walk(policies)
	return out
}

// scalars are the plain strings of a scalar or a list; intrinsic functions (!Sub, !Ref, !GetAtt)
// are not "*".
func scalars(n *yaml.Node) []string {
	switch {
	case n == nil:
		return nil
	case n.Kind == yaml.ScalarNode && (n.Tag == "" || n.Tag == "!!str"):
		return []string{n.Value}
	case n.Kind == yaml.SequenceNode && n.Tag != "!If":
		var out []string
		for _, c := range n.Content {
			out = append(out, scalars(c)...)
		}
		return out
	}
	return nil
}

// commented reports a comment on the statement (above it, or on its Resource line).
func commented(st *yaml.Node) bool {
	if strings.TrimSpace(st.HeadComment) != "" {
		return true
	}
	for i := 0; i+1 < len(st.Content); i += 2 {
		if c := st.Content[i]; strings.TrimSpace(c.HeadComment+c.LineComment) != "" || strings.TrimSpace(st.Content[i+1].LineComment) != "" {
			return true
		}
	}
	return false
}

func sid(st *yaml.Node) string {
	if s := child(st, "Sid"); s != nil {
		return s.Value
	}
	return "(no Sid)"
}
