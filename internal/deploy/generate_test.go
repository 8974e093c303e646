package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v4"

	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/presets"
)

// TestGenerated: fixtures are presets.yaml, template.yaml and sam/image.yaml. The generated
// regions of the templates are what the generator makes of presets.yaml and instance/ today: an
// edit of the presets file (or of the bootstrap) without `make generate` fails here.
func TestGenerated(t *testing.T) {
	t.Parallel()
	files, err := Generate(world.Root())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(world.Root(), name))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")); diff != "" {
			t.Errorf("%s is stale: run make generate (-generated +on disk):\n%.3000s", name, diff)
		}
	}
}

// TestRewrite: fixtures are small templates with marked regions. A region's text replaces what
// was between its markers at the marker's indentation, and a template that does not match its
// generator (a region unknown, missing, unclosed or nested) is refused.
func TestRewrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		regions   map[string]string
		want      string // "" when an error is wanted
		wantErr   string
	}{
		{name: "replaced at the marker's indentation",
			src:     "a:\n  # begin generated: r (x)\n  old: 1\n  # end generated: r\nb: 2\n",
			regions: map[string]string{"r": "new: 1\nlist:\n  - x\n\nmore: 2\n"},
			want:    "a:\n  # begin generated: r (x)\n  new: 1\n  list:\n    - x\n\n  more: 2\n  # end generated: r\nb: 2\n"},
		{name: "an empty region stays empty", src: "# begin generated: r (x)\nold\n# end generated: r\n",
			regions: map[string]string{"r": ""}, want: "# begin generated: r (x)\n# end generated: r\n"},
		{name: "unknown region", src: "# begin generated: q (x)\n# end generated: q\n", regions: map[string]string{},
			wantErr: "no generator for region q"},
		{name: "region missing from the template", src: "a: 1\n", regions: map[string]string{"r": "x"},
			wantErr: "region r: no begin marker"},
		{name: "no end", src: "# begin generated: r (x)\nold\n", regions: map[string]string{"r": "x"},
			wantErr: "region r has no end marker"},
		{name: "nested", src: "# begin generated: r (x)\n# begin generated: s (x)\n# end generated: s\n# end generated: r\n",
			regions: map[string]string{"r": "x", "s": "y"}, wantErr: "a region begins inside region r"},
		{name: "end without begin", src: "# end generated: r\n", regions: map[string]string{}, wantErr: "end of region r without its begin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Rewrite([]byte(tt.src), tt.regions)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestAppRegions: fixture is a presets file with a preset that builds its image and one that
// brings its own AMI. The own-AMI preset gets an image stack with the Ami parameter, a
// Custom::PresetAmi instead of a first build, its AMI allowed to the provisioner, and no pipeline
// anywhere; the other keeps its pipeline, first build and image events. Each region is YAML.
func TestAppRegions(t *testing.T) {
	t.Parallel()
	entries, err := presets.ParseFile([]byte(`presets:
  - name: build-x64
    architecture: x86_64
    additionalDockerImages: [postgres:16]
  - name: own-arm
    architecture: arm64
    ami: ami-0123456789abcdef0
`))
	if err != nil {
		t.Fatal(err)
	}
	regions, err := AppRegions(entries)
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range regions {
		var v any
		if err := yaml.Unmarshal([]byte(text), &v); err != nil {
			t.Errorf("region %s is not YAML: %v\n%s", name, err, text)
		}
	}
	for _, c := range []struct{ region, want string }{
		{"presets", "RunnerImageOwnArm:"},
		{"presets", "      Ami: ami-0123456789abcdef0\n"},
		{"presets", "OwnAmiOwnArm:\n  Type: Custom::PresetAmi"},
		{"presets", "FirstBuildBuildX64:\n  Type: Custom::FirstImageBuild"},
		{"presets", "      AdditionalDockerImages: postgres:16\n"},
		{"presets", "Name: !Sub /spotrunner/${AWS::StackName}/presets/own-arm"},
		{"provisioner-presets", "PRESETS: build-x64,own-arm\n"},
		{"provisioner-launch", "- Sid: LaunchPresetAmis"},
		{"provisioner-launch", `image/ami-0123456789abcdef0"`},
		{"provisioner-pass-roles", "!GetAtt RunnerImageOwnArm.Outputs.InstanceRoleArn"},
		{"amiwatcher-pipelines", `PIPELINES: !Sub "build-x64=${RunnerImageBuildX64.Outputs.ImagePipelineArn}"`},
		{"amiwatcher-image-events", "image/${AWS::StackName}-build-x64/"},
		{"amiwatcher-start-builds", "!GetAtt RunnerImageBuildX64.Outputs.ImagePipelineArn"},
		{"outputs", "LaunchTemplateIdOwnArm:"},
	} {
		if !strings.Contains(regions[c.region], c.want) {
			t.Errorf("region %s lacks %q:\n%s", c.region, c.want, regions[c.region])
		}
	}
	for _, region := range []string{"amiwatcher-pipelines", "amiwatcher-image-events", "amiwatcher-start-builds"} {
		if strings.Contains(regions[region], "own-arm") || strings.Contains(regions[region], "OwnArm") {
			t.Errorf("region %s names the own-AMI preset:\n%s", region, regions[region])
		}
	}
	if strings.Contains(regions["presets"], "FirstBuildOwnArm") {
		t.Error("the own-AMI preset has a first build")
	}

	// Every preset brings its AMI: no pipeline, no image events, no StartImagePipelineExecution.
	own, err := presets.ParseFile([]byte("presets:\n  - {name: ab, architecture: x86_64, ami: ami-01234567}\n"))
	if err != nil {
		t.Fatal(err)
	}
	regions, err = AppRegions(own)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"PIPELINES: \"\"\n", "", ""},
		[]string{regions["amiwatcher-pipelines"], regions["amiwatcher-image-events"], regions["amiwatcher-start-builds"]}); diff != "" {
		t.Errorf("own AMIs only (-want +got):\n%s", diff)
	}

	// Two names, one logical id.
	clash, err := presets.ParseFile([]byte("presets:\n  - {name: a-1, architecture: x86_64}\n  - {name: a1, architecture: x86_64}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AppRegions(clash); err == nil || !strings.Contains(err.Error(), "share the logical id A1") {
		t.Errorf("AppRegions of a-1 and a1: %v, want a logical id clash", err)
	}
}
