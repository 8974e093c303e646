package instance

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"github.com/spotrunner/spotrunner/internal/world"
)

// imageTemplatePath is sam/image.yaml, the nested stack that bakes this package's files.
func imageTemplatePath() string { return filepath.Join(world.Root(), "sam", "image.yaml") }

// loadTemplate parses a CloudFormation template into its top-level mapping node. CloudFormation's
// short-form intrinsics (!Ref, !Sub, ...) stay as node tags.
func loadTemplate(tb testing.TB, path string) *yaml.Node {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read template: %v", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		tb.Fatalf("parse %s: %v", path, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		tb.Fatalf("%s: not a YAML mapping", path)
	}
	return doc.Content[0]
}

// get walks mapping keys and returns the node found, or nil.
func get(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

// mustGet is get that ends the test when the path is missing.
func mustGet(tb testing.TB, n *yaml.Node, keys ...string) *yaml.Node {
	tb.Helper()
	v := get(n, keys...)
	if v == nil {
		tb.Fatalf("template has no %s", strings.Join(keys, "."))
	}
	return v
}

// plain turns a node into plain Go values for cmp.Diff; an intrinsic function becomes a
// one-key map from its short-form tag, e.g. {"!Ref": "DiskSizeGb"}.
func plain(n *yaml.Node) any {
	if n == nil {
		return nil
	}
	var v any
	switch n.Kind {
	case yaml.AliasNode:
		return plain(n.Alias)
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = plain(n.Content[i+1])
		}
		v = m
	case yaml.SequenceNode:
		s := []any{}
		for _, c := range n.Content {
			s = append(s, plain(c))
		}
		v = s
	default:
		v = n.Value
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return map[string]any{n.Tag: v}
	}
	return v
}

// componentDoc is the part of an Image Builder (AWSTOE) component document the tests read.
type componentDoc struct {
	Name          string                          `yaml:"name"`
	SchemaVersion string                          `yaml:"schemaVersion"`
	Parameters    []map[string]componentParameter `yaml:"parameters"`
	Phases        []struct {
		Name  string          `yaml:"name"`
		Steps []componentStep `yaml:"steps"`
	} `yaml:"phases"`
}

type componentParameter struct {
	Type        string `yaml:"type"`
	Description string `yaml:"description"`
}

type componentStep struct {
	Name   string `yaml:"name"`
	Action string `yaml:"action"`
	Inputs struct {
		Commands []string `yaml:"commands"`
	} `yaml:"inputs"`
}

// component is one AWS::ImageBuilder::Component of the template: its logical id, the raw Data
// text and the parsed document.
type component struct {
	ID   string
	Data string
	Doc  componentDoc
}

// components returns every Image Builder component of the template, in template order.
func components(tb testing.TB, tmpl *yaml.Node) []component {
	tb.Helper()
	res := mustGet(tb, tmpl, "Resources")
	var out []component
	for i := 0; i+1 < len(res.Content); i += 2 {
		r := res.Content[i+1]
		if t := get(r, "Type"); t == nil || t.Value != "AWS::ImageBuilder::Component" {
			continue
		}
		id := res.Content[i].Value
		data := get(r, "Properties", "Data")
		if data == nil || data.Kind != yaml.ScalarNode || data.Tag != "!!str" {
			tb.Fatalf("component %s: Data must be a plain inline string (no !Sub: the bootstrap uses ${...})", id)
		}
		c := component{ID: id, Data: data.Value}
		if err := yaml.Unmarshal([]byte(c.Data), &c.Doc); err != nil {
			tb.Fatalf("component %s: document does not parse: %v", id, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		tb.Fatal("template has no Image Builder components")
	}
	return out
}

// step finds a step by phase and name.
func (c component) step(phase, name string) (componentStep, bool) {
	for _, p := range c.Doc.Phases {
		if p.Name != phase {
			continue
		}
		for _, s := range p.Steps {
			if s.Name == name {
				return s, true
			}
		}
	}
	return componentStep{}, false
}

// scripts returns every ExecuteBash command of the component, named phase/step[i].
func (c component) scripts() map[string]string {
	out := map[string]string{}
	for _, p := range c.Doc.Phases {
		for _, s := range p.Steps {
			if s.Action != "ExecuteBash" {
				continue
			}
			for i, cmd := range s.Inputs.Commands {
				out[c.ID+"/"+p.Name+"/"+s.Name+"/"+strconv.Itoa(i)] = cmd
			}
		}
	}
	return out
}
