package presets

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

// TestDeployedPresets: fixture is template.yaml, whose AWS::SSM::Parameter resources under
// /spotrunner/<stack>/presets/ are the documents the provisioner reads. Each document (with its
// ${LaunchTemplateId} filled in) must parse, must name the preset of its parameter path (or Store
// rejects it as broken), and the preset names must be exactly the provisioner's PRESETS (or Store
// rejects its jobs as unknown).
func TestDeployedPresets(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(world.Root(), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Resources map[string]struct {
			Type       string    `yaml:"Type"`
			Properties yaml.Node `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(raw, &tmpl); err != nil {
		t.Fatalf("parse template.yaml: %v", err)
	}

	var deployed []string
	configured := map[string][]string{} // function -> its PRESETS
	for id, r := range tmpl.Resources {
		switch r.Type {
		case "AWS::SSM::Parameter":
			var props struct {
				Name  string    `yaml:"Name"`
				Value yaml.Node `yaml:"Value"`
			}
			if err := r.Properties.Decode(&props); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			name, ok := strings.CutPrefix(props.Name, ParameterPrefix("${AWS::StackName}"))
			if !ok {
				continue
			}
			deployed = append(deployed, name)
			// The value is `!Sub [document, {LaunchTemplateId: ...}]`.
			v := props.Value
			if v.Tag != "!Sub" || v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				t.Fatalf("%s: value is not !Sub [document, variables]", id)
			}
			doc := strings.ReplaceAll(v.Content[0].Value, "${LaunchTemplateId}", testLT)
			p, err := Parse([]byte(doc))
			if err != nil {
				t.Errorf("%s: %v", id, err)
				continue
			}
			if p.Name != name {
				t.Errorf("%s: document names %q, parameter is %s", id, p.Name, props.Name)
			}
		case "AWS::Serverless::Function":
			var props struct {
				Environment struct {
					Variables map[string]yaml.Node `yaml:"Variables"`
				} `yaml:"Environment"`
			}
			if err := r.Properties.Decode(&props); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if v, ok := props.Environment.Variables["PRESETS"]; ok {
				configured[id] = strings.Split(v.Value, ",")
			}
		}
	}
	if len(deployed) == 0 {
		t.Fatal("template.yaml has no preset parameters")
	}
	slices.Sort(deployed)
	if len(configured) == 0 {
		t.Fatal("no function has PRESETS")
	}
	for fn, names := range configured {
		slices.Sort(names)
		if diff := cmp.Diff(deployed, names); diff != "" {
			t.Errorf("%s: PRESETS against the preset parameters (-parameters +PRESETS):\n%s", fn, diff)
		}
	}
}
