package presets

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/libs/labels"
)

const testLT = "lt-0123456789abcdef0"

// defaultX64 and defaultArm64 are what a document naming only the preset, its architecture and its
// launch template becomes: the README's defaults.
var (
	defaultX64 = Preset{
		Name: "linux-x64", Architecture: "x86_64", InstanceTypes: []string{"m5.large", "m5.xlarge"},
		Strategy: SpotPreferred, TimeoutMinutes: 60, IdleMinutes: 10, DiskSizeGB: 100,
		MaxCPU: 64, MaxRAMGiB: 256, LaunchTemplateID: testLT,
	}
	defaultArm64 = Preset{
		Name: "linux-arm64", Architecture: "arm64", InstanceTypes: []string{"m6g.large", "m6g.xlarge"},
		Strategy: SpotPreferred, TimeoutMinutes: 60, IdleMinutes: 10, DiskSizeGB: 100,
		MaxCPU: 64, MaxRAMGiB: 256, LaunchTemplateID: testLT,
	}
)

// with returns a copy of p changed by f.
func with(p Preset, f func(*Preset)) Preset {
	p.InstanceTypes = append([]string(nil), p.InstanceTypes...)
	p.Labels = append([]string(nil), p.Labels...)
	f(&p)
	return p
}

// TestParse: fixtures are preset documents as the deployment writes them to SSM. A document that
// leaves fields out must get the README's defaults (x86_64 -> m5.large,m5.xlarge; arm64 ->
// m6g.large,m6g.xlarge; timeout 60, idle 10, disk 100, spotPreferred); given values must be kept;
// each validation rule, an unknown field (a typo must not be ignored), a wrong type, trailing data
// and text that is not JSON must each be an error naming what is wrong.
func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		doc     string
		want    Preset
		wantErr string // substring of the error; "" for success
	}{
		{
			name: "x86_64 defaults",
			doc:  `{"name":"linux-x64","architecture":"x86_64","launchTemplateId":"lt-0123456789abcdef0"}`,
			want: defaultX64,
		},
		{
			name: "architecture defaults to x86_64",
			doc:  `{"name":"linux-x64","launchTemplateId":"lt-0123456789abcdef0"}`,
			want: defaultX64,
		},
		{
			name: "arm64 defaults",
			doc:  `{"name":"linux-arm64","architecture":"arm64","launchTemplateId":"lt-0123456789abcdef0"}`,
			want: defaultArm64,
		},
		{
			name: "name is lowercased",
			doc:  `{"name":"Linux-X64","launchTemplateId":"lt-0123456789abcdef0"}`,
			want: defaultX64,
		},
		{
			name: "given values are kept",
			doc: `{"name":"gpu","architecture":"x86_64","instanceTypes":["g5.xlarge"],"strategy":"onDemandOnly",
				"timeoutMinutes":120,"idleMinutes":5,"diskSizeGb":200,"labels":["gpu","cuda"],"maxCpu":16,
				"maxRamGiB":64,"maxRunners":4,"launchTemplateId":"lt-0123456789abcdef0"}`,
			want: Preset{
				Name: "gpu", Architecture: "x86_64", InstanceTypes: []string{"g5.xlarge"}, Strategy: OnDemandOnly,
				TimeoutMinutes: 120, IdleMinutes: 5, DiskSizeGB: 200, Labels: []string{"gpu", "cuda"},
				MaxCPU: 16, MaxRAMGiB: 64, MaxRunners: 4, LaunchTemplateID: testLT,
			},
		},
		{
			name: "the documented names: spotStrategy and timeout",
			doc: `{"name":"gpu","architecture":"x86_64","instanceTypes":["g5.xlarge"],"spotStrategy":"onDemandOnly",
				"timeout":120,"idleMinutes":5,"diskSizeGb":200,"labels":["gpu","cuda"],"maxCpu":16,
				"maxRamGiB":64,"maxRunners":4,"launchTemplateId":"lt-0123456789abcdef0"}`,
			want: Preset{
				Name: "gpu", Architecture: "x86_64", InstanceTypes: []string{"g5.xlarge"}, Strategy: OnDemandOnly,
				TimeoutMinutes: 120, IdleMinutes: 5, DiskSizeGB: 200, Labels: []string{"gpu", "cuda"},
				MaxCPU: 16, MaxRAMGiB: 64, MaxRunners: 4, LaunchTemplateID: testLT,
			},
		},
		{
			name: "spotOnly strategy",
			doc:  `{"name":"linux-x64","strategy":"spotOnly","launchTemplateId":"lt-0123456789abcdef0"}`,
			want: with(defaultX64, func(p *Preset) { p.Strategy = SpotOnly }),
		},
		{
			name: "largest timeout and disk",
			doc:  `{"name":"linux-x64","timeoutMinutes":10080,"diskSizeGb":16384,"launchTemplateId":"lt-0123456789abcdef0"}`,
			want: with(defaultX64, func(p *Preset) { p.TimeoutMinutes, p.DiskSizeGB = 10080, 16384 }),
		},
		{
			name: "smallest timeout and disk",
			doc:  `{"name":"linux-x64","timeoutMinutes":1,"diskSizeGb":40,"launchTemplateId":"lt-0123456789abcdef0"}`,
			want: with(defaultX64, func(p *Preset) { p.TimeoutMinutes, p.DiskSizeGB = 1, 40 }),
		},

		// One case per validation rule.
		{
			name:    "name missing",
			doc:     `{"launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: "preset: name is required",
		},
		{
			name:    "unknown architecture",
			doc:     `{"name":"linux-x64","architecture":"amd64","launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: `preset linux-x64: architecture "amd64", want x86_64 or arm64`,
		},
		{
			name:    "architecture is case-sensitive",
			doc:     `{"name":"linux-arm64","architecture":"ARM64","launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: `architecture "ARM64"`,
		},
		{
			name:    "unknown strategy",
			doc:     `{"name":"linux-x64","strategy":"cheapest","launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: `preset linux-x64: spotStrategy "cheapest", want spotOnly, spotPreferred or onDemandOnly`,
		},
		{
			name:    "unknown spotStrategy",
			doc:     `{"name":"linux-x64","spotStrategy":"spotpreferred","launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: `preset linux-x64: spotStrategy "spotpreferred", want spotOnly, spotPreferred or onDemandOnly`,
		},
		{
			name:    "spotStrategy and its alias disagree",
			doc:     `{"name":"linux-x64","spotStrategy":"spotOnly","strategy":"onDemandOnly","launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: `preset linux-x64: spotStrategy "spotOnly" and its alias strategy "onDemandOnly" disagree`,
		},
		{
			name:    "timeout and its alias disagree",
			doc:     `{"name":"linux-x64","timeout":30,"timeoutMinutes":60,"launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: `preset linux-x64: timeout 30 and its alias timeoutMinutes 60 disagree`,
		},
		{
			name:    "launch template missing",
			doc:     `{"name":"linux-x64"}`,
			wantErr: "preset linux-x64: launchTemplateId is required",
		},
		{
			name:    "timeout negative",
			doc:     `{"name":"linux-x64","timeoutMinutes":-1,"launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: "preset linux-x64: timeout -1 minutes out of 1..10080",
		},
		{
			name:    "timeout over a week",
			doc:     `{"name":"linux-x64","timeoutMinutes":10081,"launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: "preset linux-x64: timeout 10081 minutes out of 1..10080",
		},
		{
			name:    "disk smaller than the image",
			doc:     `{"name":"linux-x64","diskSizeGb":39,"launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: "preset linux-x64: diskSizeGb 39 out of 40..16384",
		},
		{
			name:    "disk over the gp3 maximum",
			doc:     `{"name":"linux-x64","diskSizeGb":16385,"launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: "preset linux-x64: diskSizeGb 16385 out of 40..16384",
		},
		{
			name:    "max runners negative",
			doc:     `{"name":"linux-x64","maxRunners":-1,"launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: "preset linux-x64: maxRunners -1 is negative",
		},

		// Documents that do not decode.
		{
			name:    "unknown field",
			doc:     `{"name":"linux-x64","instanceType":"m5.large","launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: `decode preset: json: unknown field "instanceType"`,
		},
		{
			name:    "wrong type",
			doc:     `{"name":"linux-x64","timeoutMinutes":"60","launchTemplateId":"lt-0123456789abcdef0"}`,
			wantErr: "decode preset: json: cannot unmarshal string",
		},
		{
			name:    "trailing document",
			doc:     `{"name":"linux-x64","launchTemplateId":"lt-0123456789abcdef0"}{"name":"other"}`,
			wantErr: "decode preset: data after the document",
		},
		{
			name:    "trailing garbage",
			doc:     `{"name":"linux-x64","launchTemplateId":"lt-0123456789abcdef0"} x`,
			wantErr: "decode preset: data after the document",
		},
		{
			name:    "not JSON",
			doc:     `name: linux-x64`,
			wantErr: "decode preset: invalid character",
		},
		{
			name:    "empty",
			doc:     ``,
			wantErr: "decode preset: EOF",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse([]byte(tt.doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseTrailingWhitespace: fixture is a document followed by a newline and spaces, as a file
// or a shell heredoc writes it; it must parse.
func TestParseTrailingWhitespace(t *testing.T) {
	t.Parallel()
	got, err := Parse([]byte("{\"name\":\"linux-x64\",\"launchTemplateId\":\"" + testLT + "\"}\n  \n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if diff := cmp.Diff(defaultX64, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

// TestServes: fixtures are the two default presets (x64 with extra labels "GPU" and "docker",
// written in mixed case on purpose) and job label sets as GitHub sends them. A job is served when
// its cpu/ram lie within the preset's bounds and every label is self-hosted, the job's spotrunner
// label, an architecture label of the preset (linux/x64 or linux/arm64) or an extra label of the
// preset, compared case-insensitively; otherwise the error is the exact user-facing reason.
func TestServes(t *testing.T) {
	t.Parallel()
	x64 := with(defaultX64, func(p *Preset) { p.Labels = []string{"GPU", "docker"} })
	arm := defaultArm64
	tests := []struct {
		name    string
		preset  Preset
		spec    labels.Spec
		labels  []string
		wantErr string // the whole error; "" when served
	}{
		{
			name:   "self-hosted and the spotrunner label",
			preset: x64,
			spec:   labels.Spec{Preset: "linux-x64"},
			labels: []string{"self-hosted", "spotrunner/linux-x64"},
		},
		{
			name:   "spotrunner label with options, in any case",
			preset: x64,
			spec:   labels.Spec{Preset: "linux-x64", CPU: 4, RAMGiB: 16},
			labels: []string{"self-hosted", "SpotRunner/Linux-X64/ram=16, cpu=4"},
		},
		{
			name:   "spotrunner label alone",
			preset: x64,
			spec:   labels.Spec{Preset: "linux-x64"},
			labels: []string{"spotrunner/linux-x64"},
		},
		{
			name:   "x64 architecture labels",
			preset: x64,
			spec:   labels.Spec{Preset: "linux-x64"},
			labels: []string{"self-hosted", "linux", "x64", "spotrunner/linux-x64"},
		},
		{
			name:   "arm64 architecture labels",
			preset: arm,
			spec:   labels.Spec{Preset: "linux-arm64"},
			labels: []string{"self-hosted", "linux", "arm64", "spotrunner/linux-arm64"},
		},
		{
			name:   "labels in GitHub's capitalisation",
			preset: x64,
			spec:   labels.Spec{Preset: "linux-x64"},
			labels: []string{"Self-Hosted", "Linux", "X64", "spotrunner/linux-x64"},
		},
		{
			name:   "extra labels, case-insensitive both ways",
			preset: x64,
			spec:   labels.Spec{Preset: "linux-x64"},
			labels: []string{"self-hosted", "gpu", "Docker", "spotrunner/linux-x64"},
		},
		{
			name:   "duplicates and surrounding whitespace",
			preset: x64,
			spec:   labels.Spec{Preset: "linux-x64"},
			labels: []string{"self-hosted", " self-hosted", "gpu ", "spotrunner/linux-x64"},
		},
		{
			name:   "cpu and ram at the preset's maximum",
			preset: x64,
			spec:   labels.Spec{Preset: "linux-x64", CPU: 64, RAMGiB: 256},
			labels: []string{"self-hosted", "spotrunner/linux-x64/cpu=64,ram=256"},
		},
		{
			name:    "arm64 label on the x64 preset",
			preset:  x64,
			spec:    labels.Spec{Preset: "linux-x64"},
			labels:  []string{"self-hosted", "arm64", "spotrunner/linux-x64"},
			wantErr: `label "arm64" is not served by preset linux-x64 (it serves self-hosted, linux, x64, gpu, docker)`,
		},
		{
			name:    "x64 label on the arm64 preset",
			preset:  arm,
			spec:    labels.Spec{Preset: "linux-arm64"},
			labels:  []string{"self-hosted", "X64", "spotrunner/linux-arm64"},
			wantErr: `label "x64" is not served by preset linux-arm64 (it serves self-hosted, linux, arm64)`,
		},
		{
			name:    "hosted runner label",
			preset:  x64,
			spec:    labels.Spec{Preset: "linux-x64"},
			labels:  []string{"ubuntu-latest", "spotrunner/linux-x64"},
			wantErr: `label "ubuntu-latest" is not served by preset linux-x64 (it serves self-hosted, linux, x64, gpu, docker)`,
		},
		{
			name:    "extra label of another preset",
			preset:  arm,
			spec:    labels.Spec{Preset: "linux-arm64"},
			labels:  []string{"self-hosted", "gpu", "spotrunner/linux-arm64"},
			wantErr: `label "gpu" is not served by preset linux-arm64 (it serves self-hosted, linux, arm64)`,
		},
		{
			name:    "cpu over the maximum",
			preset:  x64,
			spec:    labels.Spec{Preset: "linux-x64", CPU: 65},
			labels:  []string{"self-hosted", "spotrunner/linux-x64/cpu=65"},
			wantErr: "cpu=65 is over preset linux-x64's maximum of 64",
		},
		{
			name:    "ram over the maximum",
			preset:  x64,
			spec:    labels.Spec{Preset: "linux-x64", RAMGiB: 257},
			labels:  []string{"self-hosted", "spotrunner/linux-x64/ram=257"},
			wantErr: "ram=257 is over preset linux-x64's maximum of 256 GiB",
		},
		{
			name:    "narrowed bounds",
			preset:  with(arm, func(p *Preset) { p.MaxCPU, p.MaxRAMGiB = 8, 32 }),
			spec:    labels.Spec{Preset: "linux-arm64", CPU: 8, RAMGiB: 64},
			labels:  []string{"self-hosted", "spotrunner/linux-arm64/cpu=8,ram=64"},
			wantErr: "ram=64 is over preset linux-arm64's maximum of 32 GiB",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.preset.Serves(tt.spec, tt.labels)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tt.wantErr, got); diff != "" {
				t.Errorf("Serves(%+v, %q) error (-want +got):\n%s", tt.spec, tt.labels, diff)
			}
		})
	}
}
