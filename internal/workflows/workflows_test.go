package workflows

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/libs/presets"
)

// realPresets reads the repository's presets.yaml: linux-x64 and linux-arm64, with the default
// bounds (cpu 64, ram 256 GiB).
func realPresets(t *testing.T) map[string]presets.Preset {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "presets.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	known, err := ReadPresets(raw)
	if err != nil {
		t.Fatalf("ReadPresets(presets.yaml): %v", err)
	}
	return known
}

// gpuPresets is one preset with extra labels and narrow bounds.
func gpuPresets(t *testing.T) map[string]presets.Preset {
	t.Helper()
	known, err := ReadPresets([]byte(`presets:
  - name: gpu
    architecture: x86_64
    instanceTypes: [g5.xlarge, g5.2xlarge]
    labels: [gpu, CUDA]
    maxCpu: 8
    maxRamGiB: 32
`))
	if err != nil {
		t.Fatal(err)
	}
	return known
}

// TestCheck: fixtures are workflow files in testdata shaped like public repositories' workflows.
// Each job of ours that the provisioner would reject gets one error finding per mistake, at the
// line and column of the label to fix, with the provisioner's reason (Reason here is a substring);
// a YAML-split label is an error at the cut-off option; expressions are unchecked, never errors;
// jobs that are not ours, and reusable-workflow jobs, get nothing.
func TestCheck(t *testing.T) {
	t.Parallel()
	repo, gpu := realPresets(t), gpuPresets(t)
	const (
		split        = "YAML split the label at the comma"
		exprLabels   = "the job's labels are an expression, known only when the workflow runs"
		exprLabel    = "label is an expression, known only when the workflow runs"
		x64Serves    = "is not served by preset linux-x64 (it serves self-hosted, linux, x64)"
		unknownLinux = "; known presets: linux-arm64, linux-x64"
	)
	tests := []struct {
		name  string
		file  string
		known map[string]presets.Preset
		want  []Finding
	}{
		{name: "ci with matrix, quoted, unquoted and block lists, reusable job", file: "repo/.github/workflows/ci.yml", known: repo, want: []Finding{
			{Line: 29, Column: 14, Job: "test", Label: "${{ matrix.os }}", Severity: SeverityUnchecked, Reason: exprLabels},
			{Line: 44, Column: 57, Job: "build-arm", Label: "ram=32", Severity: SeverityError,
				Reason: split + `, so "ram=32" is a label of its own (which no runner carries); quote the whole label: "spotrunner/linux-arm64/cpu=8,ram=32"`},
			{Line: 68, Column: 14, Job: "e2e", Label: "${{ matrix.runner }}", Severity: SeverityUnchecked, Reason: exprLabels},
		}},
		{name: "runner groups", file: "repo/.github/workflows/runner-groups.yaml", known: repo, want: []Finding{
			{Line: 27, Column: 63, Job: "flow-object", Label: "ram=4", Severity: SeverityError,
				Reason: split + `, so "ram=4" is a label of its own (which no runner carries); quote the whole label: "spotrunner/linux-x64/cpu=2,ram=4"`},
			{Line: 32, Column: 15, Job: "from-input", Label: "${{ inputs.runner }}", Severity: SeverityUnchecked, Reason: exprLabels},
			{Line: 40, Column: 11, Job: "wrong-arch", Label: "arm64", Severity: SeverityError, Reason: `label "arm64" ` + x64Serves},
		}},
		{name: "reusable workflow", file: "repo/.github/workflows/release.yml", known: repo},
		{name: "every rejection", file: "rejected.yml", known: repo, want: []Finding{
			{Line: 5, Column: 28, Job: "unknown-preset", Label: "spotrunner/linux-x86", Severity: SeverityError,
				Reason: `unknown preset "linux-x86"` + unknownLinux},
			{Line: 7, Column: 28, Job: "unknown-option", Label: "spotrunner/linux-x64/disk=100", Severity: SeverityError,
				Reason: `unknown option "disk"; known options: cpu, ram`},
			{Line: 9, Column: 28, Job: "over-label-bound", Label: "spotrunner/linux-x64/cpu=500", Severity: SeverityError,
				Reason: "cpu must be at most 192 vCPUs, got 500"},
			{Line: 11, Column: 28, Job: "over-preset-max", Label: "spotrunner/linux-x64/cpu=96,ram=16", Severity: SeverityError,
				Reason: "cpu=96 is over preset linux-x64's maximum of 64"},
			{Line: 13, Column: 28, Job: "two-labels", Label: "spotrunner/linux-x64", Severity: SeverityError,
				Reason: `job has more than one spotrunner label ("spotrunner/linux-x64" and "spotrunner/linux-arm64")`},
			{Line: 17, Column: 40, Job: "unserved-labels", Label: "gpu", Severity: SeverityError, Reason: `label "gpu" ` + x64Serves},
			{Line: 17, Column: 69, Job: "unserved-labels", Label: "windows", Severity: SeverityError, Reason: `label "windows" ` + x64Serves},
			{Line: 19, Column: 28, Job: "expression-option", Label: "spotrunner/linux-x64/cpu=${{ matrix.cpu }}", Severity: SeverityUnchecked,
				Reason: exprLabel},
			{Line: 21, Column: 52, Job: "expression-item", Label: "${{ matrix.extra }}", Severity: SeverityUnchecked, Reason: exprLabel},
			{Line: 21, Column: 75, Job: "expression-item", Label: "gpu", Severity: SeverityError, Reason: `label "gpu" ` + x64Serves},
			{Line: 23, Column: 28, Job: "typographic-hyphen", Label: "spotrunner/linux\u2010x64", Severity: SeverityError,
				Reason: "label contains the non-ASCII character U+2010"},
			{Line: 25, Column: 57, Job: "split-with-space", Label: "cpu=4", Severity: SeverityError,
				Reason: `quote the whole label: "spotrunner/linux-x64/ram=16,cpu=4"`},
			{Line: 27, Column: 55, Job: "split-twice", Label: "ram=16", Severity: SeverityError,
				Reason: `quote the whole label: "spotrunner/linux-x64/cpu=4,ram=16,disk=100"; quoted, it is still refused: unknown option "disk"`},
			{Line: 27, Column: 62, Job: "split-twice", Label: "disk=100", Severity: SeverityError,
				Reason: `quote the whole label: "spotrunner/linux-x64/cpu=4,ram=16,disk=100"`},
			// The alias is reported where its text is written, the anchor.
			{Line: 29, Column: 57, Job: "anchored", Label: "gpu", Severity: SeverityError, Reason: `label "gpu" ` + x64Serves},
			{Line: 29, Column: 57, Job: "aliased", Label: "gpu", Severity: SeverityError, Reason: `label "gpu" ` + x64Serves},
		}},
		{name: "preset with labels and narrow bounds", file: "gpu.yml", known: gpu, want: []Finding{
			{Line: 6, Column: 28, Job: "big", Label: "spotrunner/gpu/cpu=16,ram=64", Severity: SeverityError,
				Reason: "cpu=16 is over preset gpu's maximum of 8"},
			{Line: 8, Column: 28, Job: "x64", Label: "spotrunner/linux-x64", Severity: SeverityError,
				Reason: `unknown preset "linux-x64"; known presets: gpu`},
		}},
		{name: "gpu preset not configured", file: "gpu.yml", known: repo, want: []Finding{
			{Line: 4, Column: 28, Job: "train", Label: "spotrunner/gpu", Severity: SeverityError, Reason: `unknown preset "gpu"` + unknownLinux},
			{Line: 6, Column: 28, Job: "big", Label: "spotrunner/gpu/cpu=16,ram=64", Severity: SeverityError, Reason: `unknown preset "gpu"` + unknownLinux},
		}},
		{name: "no presets", file: "gpu.yml", known: nil, want: []Finding{
			{Line: 4, Column: 28, Job: "train", Label: "spotrunner/gpu", Severity: SeverityError, Reason: "no presets are configured"},
			{Line: 6, Column: 28, Job: "big", Label: "spotrunner/gpu/cpu=16,ram=64", Severity: SeverityError, Reason: "no presets are configured"},
			{Line: 8, Column: 28, Job: "x64", Label: "spotrunner/linux-x64", Severity: SeverityError, Reason: "no presets are configured"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join("testdata", tt.file)
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Check(file, data, tt.known)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			for i := range tt.want {
				tt.want[i].File = file
				if i < len(got) && strings.Contains(got[i].Reason, tt.want[i].Reason) {
					got[i].Reason = tt.want[i].Reason
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check(%s) findings (-want +got):\n%s", file, diff)
			}
		})
	}
}

// TestCheckFileErrors: fixtures are files that are not workflows. Each is a *FileError naming
// the file and, where there is one, the line and column, saying what it is instead.
func TestCheckFileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want string
	}{
		{file: "broken.yml", want: "testdata/broken.yml:5:10: not valid YAML: did not find expected ',' or ']' " +
			"(a flow sequence started on line 4)"},
		{file: "repo/.github/dependabot.yml", want: "testdata/repo/.github/dependabot.yml:1:1: not a GitHub workflow: no jobs: at the top level"},
		{file: "list.yml", want: "testdata/list.yml:1:1: not a GitHub workflow: the top level is a list, not a mapping with jobs:"},
		{file: "empty.yml", want: "testdata/empty.yml: not a GitHub workflow: the file has no YAML document"},
		{file: "jobs-list.yml", want: "testdata/jobs-list.yml:2:1: not a GitHub workflow: jobs: is a list, not a mapping of job ids to jobs"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join("testdata", tt.file)
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Check(file, data, nil)
			if _, ok := errors.AsType[*FileError](err); !ok || got != nil {
				t.Fatalf("Check(%s) = %v, %v; want no findings and a *FileError", file, got, err)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("Check(%s) error (-want +got):\n%s", file, diff)
			}
		})
	}
}

// TestFiles: fixtures are testdata's directories. A directory gives its YAML files, recursively
// and sorted; a file is kept as given, in argument order.
func TestFiles(t *testing.T) {
	t.Parallel()
	got, err := Files([]string{"testdata/repo", "testdata/gpu.yml"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"testdata/repo/.github/dependabot.yml",
		"testdata/repo/.github/workflows/ci.yml",
		"testdata/repo/.github/workflows/release.yml",
		"testdata/repo/.github/workflows/runner-groups.yaml",
		"testdata/gpu.yml",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	if _, err := Files([]string{"testdata/missing"}); err == nil {
		t.Error("Files(testdata/missing): no error")
	}
}

// TestReadPresets: the repository's presets.yaml gives its presets as the provisioner reads them
// (defaults applied); an invalid presets file is refused with ParseFile's error.
func TestReadPresets(t *testing.T) {
	t.Parallel()
	known := realPresets(t)
	type bounds struct {
		Architecture      string
		MaxCPU, MaxRAMGiB int
	}
	got := map[string]bounds{}
	for name, p := range known {
		got[name] = bounds{p.Architecture, p.MaxCPU, p.MaxRAMGiB}
	}
	want := map[string]bounds{"linux-x64": {"x86_64", 64, 256}, "linux-arm64": {"arm64", 64, 256}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadPresets(presets.yaml) (-want +got):\n%s", diff)
	}
	_, err := ReadPresets([]byte("presets:\n  - {name: ab, architecture: amd64}\n"))
	if err == nil || !strings.Contains(err.Error(), `architecture "amd64"`) {
		t.Errorf("ReadPresets(bad architecture) error = %v", err)
	}
}
