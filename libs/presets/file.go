package presets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/spotrunner/spotrunner/libs/labels"
)

// Entry is one preset as the presets file (presets.yaml) declares it: the fields of its document,
// and what the deployment makes for it: an Image Builder pipeline, or nothing when the preset
// names its own AMI.
type Entry struct {
	Preset
	// AdditionalDockerImages are pre-pulled into the preset's image besides the defaults.
	AdditionalDockerImages []string
	// AMI is the preset's own AMI (bring your own): no pipeline; the preset is ready at once.
	AMI string
	// Line is where the entry starts in the file, for error messages.
	Line int
}

// entryYAML is an entry as written. The product's documented names are the only ones the file
// takes (spotStrategy, timeout); the document aliases are for documents written by hand.
type entryYAML struct {
	Name                   string   `yaml:"name"`
	Architecture           string   `yaml:"architecture"`
	InstanceTypes          []string `yaml:"instanceTypes"`
	Labels                 []string `yaml:"labels"`
	AdditionalDockerImages []string `yaml:"additionalDockerImages"`
	Timeout                int      `yaml:"timeout"`
	IdleMinutes            int      `yaml:"idleMinutes"`
	DiskSizeGB             int      `yaml:"diskSizeGb"`
	SpotStrategy           string   `yaml:"spotStrategy"`
	MaxRunners             int      `yaml:"maxRunners"`
	MaxCPU                 int      `yaml:"maxCpu"`
	MaxRAMGiB              int      `yaml:"maxRamGiB"`
	AMI                    string   `yaml:"ami"`
}

var (
	// A preset name is part of resource names (Image Builder, launch templates) and of the label.
	namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$`)
	amiPattern  = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
	// An instance type: family (class letters, generation digit(s), attribute letters, maybe
	// "-flex"), a dot, a size.
	instanceTypePattern = regexp.MustCompile(`^([a-z]+)([0-9]+)([a-z-]*)\.([a-z0-9-]+)$`)
	// A Docker image reference, as sam/image.yaml's AdditionalDockerImages parameter takes them.
	dockerImagePattern = regexp.MustCompile(`^[A-Za-z0-9._/:@-]+$`)
)

// ParseFile reads and checks a presets file: every entry valid on its own (ParseFile applies the
// documented defaults), names unique, and each instance type of the preset's architecture. Errors
// name the file's line.
func ParseFile(data []byte) ([]Entry, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("presets file: %w", err)
	}
	if len(root.Content) == 0 {
		return nil, errors.New("presets file: empty; it needs a presets: list")
	}
	var file struct {
		Presets []yaml.Node `yaml:"presets"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("presets file: %w", err)
	}
	if len(file.Presets) == 0 {
		return nil, errors.New("presets file: no presets (the presets list is empty)")
	}
	var out []Entry
	seen := map[string]int{}
	for _, n := range file.Presets {
		e, err := parseEntry(&n)
		if err != nil {
			return nil, fmt.Errorf("presets file line %d: %w", n.Line, err)
		}
		if first, dup := seen[e.Name]; dup {
			return nil, fmt.Errorf("presets file line %d: preset %s is already declared on line %d", n.Line, e.Name, first)
		}
		seen[e.Name] = n.Line
		out = append(out, e)
	}
	return out, nil
}

func parseEntry(n *yaml.Node) (Entry, error) {
	var y entryYAML
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(n); err != nil {
		return Entry{}, err
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true) // a misspelt field (spotstrategy, disk) is an error, not a default
	if err := dec.Decode(&y); err != nil && err != io.EOF {
		return Entry{}, err
	}
	e := Entry{
		Preset: Preset{
			Name: y.Name, Architecture: y.Architecture, InstanceTypes: y.InstanceTypes, Labels: y.Labels,
			Strategy: y.SpotStrategy, TimeoutMinutes: y.Timeout, IdleMinutes: y.IdleMinutes, DiskSizeGB: y.DiskSizeGB,
			MaxRunners: y.MaxRunners, MaxCPU: y.MaxCPU, MaxRAMGiB: y.MaxRAMGiB,
		},
		AdditionalDockerImages: y.AdditionalDockerImages,
		AMI:                    y.AMI,
		Line:                   n.Line,
	}
	if !namePattern.MatchString(e.Name) {
		return Entry{}, fmt.Errorf("preset name %q: want 2 to 32 lower-case letters, digits and hyphens, not at either end", e.Name)
	}
	if e.Architecture == "" {
		return Entry{}, fmt.Errorf("preset %s: architecture is required (x86_64 or arm64)", e.Name)
	}
	e.applyDefaults()
	if err := e.validateFields(); err != nil {
		return Entry{}, err
	}
	for _, t := range e.InstanceTypes {
		arch, err := InstanceTypeArchitecture(t)
		if err != nil {
			return Entry{}, fmt.Errorf("preset %s: %w", e.Name, err)
		}
		if arch != e.Architecture {
			return Entry{}, fmt.Errorf("preset %s: instance type %s is %s, the preset is %s", e.Name, t, arch, e.Architecture)
		}
	}
	for _, l := range e.Labels {
		if l == "" || strings.ContainsAny(l, ", \t") || labels.IsSpotRunner(strings.ToLower(l)) {
			return Entry{}, fmt.Errorf("preset %s: label %q: want one label without commas or spaces, not a spotrunner/ label", e.Name, l)
		}
	}
	for _, img := range e.AdditionalDockerImages {
		if !dockerImagePattern.MatchString(img) {
			return Entry{}, fmt.Errorf("preset %s: additionalDockerImages: %q is not an image reference", e.Name, img)
		}
	}
	if e.AMI != "" && !amiPattern.MatchString(e.AMI) {
		return Entry{}, fmt.Errorf("preset %s: ami %q: want ami- and 8 or 17 hex digits", e.Name, e.AMI)
	}
	if e.AMI != "" && len(e.AdditionalDockerImages) > 0 {
		return Entry{}, fmt.Errorf("preset %s: additionalDockerImages are pulled by the image build, and a preset with its own ami has none; pre-pull them in your AMI", e.Name)
	}
	return e, nil
}

// InstanceTypeArchitecture tells an EC2 instance type's CPU architecture from its family name:
// Graviton families carry a "g" among the attribute letters after the generation (m7g, c7gn,
// r8gd, im4gn, is4gen, g5g), and a1 is the first Graviton; every other family is x86_64. Mac
// instances are refused: they run macOS, not the runner image.
func InstanceTypeArchitecture(t string) (string, error) {
	m := instanceTypePattern.FindStringSubmatch(t)
	switch {
	case m == nil:
		return "", fmt.Errorf("instance type %q: want family.size, e.g. m7g.large", t)
	case m[1] == "mac":
		return "", fmt.Errorf("instance type %q: Mac instances cannot run a Linux runner image", t)
	case m[1] == "a" && m[2] == "1", strings.Contains(m[3], "g"):
		return "arm64", nil
	}
	return "x86_64", nil
}

// Document is the preset's document in SSM as the provisioner reads it (Parse), with the
// product's field names, for the given launch template.
func (p Preset) Document(launchTemplateID string) ([]byte, error) {
	doc := struct {
		Name             string   `json:"name"`
		Architecture     string   `json:"architecture"`
		InstanceTypes    []string `json:"instanceTypes"`
		SpotStrategy     string   `json:"spotStrategy"`
		Timeout          int      `json:"timeout"`
		IdleMinutes      int      `json:"idleMinutes"`
		DiskSizeGB       int      `json:"diskSizeGb"`
		Labels           []string `json:"labels"`
		MaxCPU           int      `json:"maxCpu"`
		MaxRAMGiB        int      `json:"maxRamGiB"`
		MaxRunners       int      `json:"maxRunners"`
		LaunchTemplateID string   `json:"launchTemplateId"`
	}{
		p.Name, p.Architecture, p.InstanceTypes, p.Strategy, p.TimeoutMinutes, p.IdleMinutes, p.DiskSizeGB,
		append([]string{}, p.Labels...), p.MaxCPU, p.MaxRAMGiB, p.MaxRunners, launchTemplateID,
	}
	return json.Marshal(doc)
}
