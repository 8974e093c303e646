package presets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// TestParseFile: fixtures are small presets files. A valid file gives its entries with the
// documented defaults; every mistake the issue names (a name used twice, an unknown architecture,
// an instance type of the other architecture, a misspelt strategy or field) is refused with the
// line it is on.
func TestParseFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		want    []Entry
		wantErr string
	}{
		{name: "defaults", file: "presets:\n  - name: linux-x64\n    architecture: x86_64\n",
			want: []Entry{{Preset: with(defaultX64, func(p *Preset) { p.LaunchTemplateID = "" }), Line: 2}}},
		{name: "every field", file: `presets:
  - name: gpu
    architecture: x86_64
    instanceTypes: [g5.xlarge, g6.2xlarge]
    labels: [gpu, CUDA]
    additionalDockerImages: [nvidia/cuda:12.4.1-base-ubuntu22.04]
    timeout: 120
    idleMinutes: 5
    diskSizeGb: 200
    spotStrategy: onDemandOnly
    maxRunners: 4
    maxCpu: 8
    maxRamGiB: 32
  - name: own-arm
    architecture: arm64
    ami: ami-0123456789abcdef0
`, want: []Entry{
			{Preset: Preset{Name: "gpu", Architecture: "x86_64", InstanceTypes: []string{"g5.xlarge", "g6.2xlarge"}, Strategy: OnDemandOnly,
				TimeoutMinutes: 120, IdleMinutes: 5, DiskSizeGB: 200, Labels: []string{"gpu", "CUDA"}, MaxCPU: 8, MaxRAMGiB: 32, MaxRunners: 4},
				AdditionalDockerImages: []string{"nvidia/cuda:12.4.1-base-ubuntu22.04"}, Line: 2},
			{Preset: with(defaultArm64, func(p *Preset) { p.Name, p.LaunchTemplateID = "own-arm", "" }), AMI: "ami-0123456789abcdef0", Line: 14},
		}},
		{name: "name twice", file: "presets:\n  - {name: ab, architecture: x86_64}\n  - {name: ab, architecture: arm64}\n",
			wantErr: "line 3: preset ab is already declared on line 2"},
		{name: "unknown architecture", file: "presets:\n  - {name: ab, architecture: amd64}\n",
			wantErr: `line 2: preset ab: architecture "amd64", want x86_64 or arm64`},
		{name: "no architecture", file: "presets:\n  - {name: ab}\n", wantErr: "architecture is required"},
		{name: "arm type on x86", file: "presets:\n  - {name: ab, architecture: x86_64, instanceTypes: [m5.large, c7g.large]}\n",
			wantErr: "instance type c7g.large is arm64, the preset is x86_64"},
		{name: "x86 type on arm", file: "presets:\n  - {name: ab, architecture: arm64, instanceTypes: [m7i-flex.large]}\n",
			wantErr: "instance type m7i-flex.large is x86_64, the preset is arm64"},
		{name: "not an instance type", file: "presets:\n  - {name: ab, architecture: arm64, instanceTypes: [large]}\n",
			wantErr: `instance type "large": want family.size`},
		{name: "strategy misspelt", file: "presets:\n  - {name: ab, architecture: arm64, spotStrategy: spot-preferred}\n",
			wantErr: `spotStrategy "spot-preferred", want spotOnly, spotPreferred or onDemandOnly`},
		{name: "field misspelt", file: "presets:\n  - {name: ab, architecture: arm64, spotstrategy: spotOnly}\n",
			wantErr: "field spotstrategy not found"},
		{name: "document alias is not a file field", file: "presets:\n  - {name: ab, architecture: arm64, timeoutMinutes: 5}\n",
			wantErr: "field timeoutMinutes not found"},
		{name: "bad name", file: "presets:\n  - {name: Linux_X64, architecture: x86_64}\n", wantErr: `preset name "Linux_X64"`},
		{name: "bad AMI", file: "presets:\n  - {name: ab, architecture: x86_64, ami: ami-123}\n", wantErr: `ami "ami-123"`},
		{name: "own AMI with images to pull", file: "presets:\n  - {name: ab, architecture: x86_64, ami: ami-01234567, additionalDockerImages: [redis]}\n",
			wantErr: "pre-pull them in your AMI"},
		{name: "spotrunner label", file: "presets:\n  - {name: ab, architecture: x86_64, labels: [spotrunner/ab]}\n", wantErr: `label "spotrunner/ab"`},
		{name: "disk too small", file: "presets:\n  - {name: ab, architecture: x86_64, diskSizeGb: 8}\n", wantErr: "diskSizeGb 8 out of 40..16384"},
		{name: "no presets", file: "presets: []\n", wantErr: "no presets (the presets list is empty)"},
		{name: "empty", file: "", wantErr: "empty"},
		{name: "unknown top-level key", file: "preset:\n  - {name: ab, architecture: x86_64}\n", wantErr: "field preset not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseFile([]byte(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseFile error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseFile (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInstanceTypeArchitecture: fixtures are instance types of current families, Graviton and not.
func TestInstanceTypeArchitecture(t *testing.T) {
	t.Parallel()
	for typ, want := range map[string]string{
		"m5.large": "x86_64", "m7i-flex.large": "x86_64", "c5n.18xlarge": "x86_64", "g4dn.xlarge": "x86_64", "g6e.2xlarge": "x86_64",
		"r7iz.large": "x86_64", "m7a.medium": "x86_64", "p5.48xlarge": "x86_64", "i4i.large": "x86_64", "z1d.large": "x86_64",
		"m6g.large": "arm64", "c7gn.large": "arm64", "r8gd.large": "arm64", "t4g.micro": "arm64", "a1.large": "arm64",
		"im4gn.large": "arm64", "is4gen.large": "arm64", "g5g.xlarge": "arm64", "x2gd.large": "arm64", "hpc7g.4xlarge": "arm64",
	} {
		if got, err := InstanceTypeArchitecture(typ); err != nil || got != want {
			t.Errorf("InstanceTypeArchitecture(%s) = %q, %v; want %q", typ, got, err, want)
		}
	}
	for _, typ := range []string{"mac2.metal", "m5", ".large", "M5.large"} {
		if got, err := InstanceTypeArchitecture(typ); err == nil {
			t.Errorf("InstanceTypeArchitecture(%s) = %q, want an error", typ, got)
		}
	}
}

// TestPresetsFile: fixture is the shipped presets.yaml; it must be valid, and each entry's
// document must parse back to the same preset (what the provisioner will read).
func TestPresetsFile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(world.Root(), "presets.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ParseFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		doc, err := e.Document(testLT)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Parse(doc)
		if err != nil {
			t.Fatalf("%s: document %s: %v", e.Name, doc, err)
		}
		want := e.Preset
		want.LaunchTemplateID = testLT
		if want.Labels == nil {
			want.Labels = []string{}
		}
		if diff := cmp.Diff(want, p); diff != "" {
			t.Errorf("%s: document round trip (-want +got):\n%s", e.Name, diff)
		}
	}
}
