// Package presets is what a runner preset is and where it comes from: one JSON document per preset
// in SSM Parameter Store (/spotrunner/<deployment>/presets/<name>, written by the deployment from
// the presets file, presets.yaml), read through a short-TTL cache so an edit takes effect within a minute without a deploy
// of the functions.
//
// A preset decides which jobs it can serve (Serves): the job's labels must be a subset of
// self-hosted, its spotrunner/<preset> labels, its architecture labels and its extra labels, and
// the cpu/ram options must lie within its bounds.
package presets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/spotrunner/spotrunner/libs/labels"
)

// ParameterPrefix is where a deployment's preset documents live: /spotrunner/<deployment>/presets/.
func ParameterPrefix(deployment string) string { return "/spotrunner/" + deployment + "/presets/" }

// Strategies (libs/fleet speaks the same words).
const (
	SpotOnly      = "spotOnly"
	SpotPreferred = "spotPreferred"
	OnDemandOnly  = "onDemandOnly"
)

// Preset is one runner preset.
type Preset struct {
	Name             string   `json:"name"`
	Architecture     string   `json:"architecture"` // "x86_64" | "arm64"
	InstanceTypes    []string `json:"instanceTypes"`
	Strategy         string   `json:"strategy"`
	TimeoutMinutes   int      `json:"timeoutMinutes"`
	IdleMinutes      int      `json:"idleMinutes"`
	DiskSizeGB       int      `json:"diskSizeGb"`
	Labels           []string `json:"labels"`     // extra labels the preset serves
	MaxCPU           int      `json:"maxCpu"`     // upper bound of the cpu option
	MaxRAMGiB        int      `json:"maxRamGiB"`  // upper bound of the ram option
	MaxRunners       int      `json:"maxRunners"` // concurrent runners of this preset; 0 = no cap
	LaunchTemplateID string   `json:"launchTemplateId"`
}

// Defaults are the README's preset defaults, applied to fields a document leaves out.
func (p *Preset) applyDefaults() {
	if len(p.InstanceTypes) == 0 {
		if p.Architecture == "arm64" {
			p.InstanceTypes = []string{"m6g.large", "m6g.xlarge"}
		} else {
			p.InstanceTypes = []string{"m5.large", "m5.xlarge"}
		}
	}
	if p.Architecture == "" {
		p.Architecture = "x86_64"
	}
	if p.Strategy == "" {
		p.Strategy = SpotPreferred
	}
	if p.TimeoutMinutes == 0 {
		p.TimeoutMinutes = 60
	}
	if p.IdleMinutes == 0 {
		p.IdleMinutes = 10
	}
	if p.DiskSizeGB == 0 {
		p.DiskSizeGB = 100
	}
	if p.MaxCPU == 0 {
		p.MaxCPU = 64
	}
	if p.MaxRAMGiB == 0 {
		p.MaxRAMGiB = 256
	}
}

// Validate checks a preset document.
func (p Preset) Validate() error {
	if err := p.validateFields(); err != nil {
		return err
	}
	if p.LaunchTemplateID == "" {
		return fmt.Errorf("preset %s: launchTemplateId is required", p.Name)
	}
	return nil
}

// validateFields checks what a preset declares (all but the launch template the deployment makes).
func (p Preset) validateFields() error {
	switch {
	case p.Name == "":
		return errors.New("preset: name is required")
	case p.Architecture != "x86_64" && p.Architecture != "arm64":
		return fmt.Errorf("preset %s: architecture %q, want x86_64 or arm64", p.Name, p.Architecture)
	case p.Strategy != SpotOnly && p.Strategy != SpotPreferred && p.Strategy != OnDemandOnly:
		return fmt.Errorf("preset %s: spotStrategy %q, want spotOnly, spotPreferred or onDemandOnly", p.Name, p.Strategy)
	case p.TimeoutMinutes < 1 || p.TimeoutMinutes > 7*24*60:
		return fmt.Errorf("preset %s: timeout %d minutes out of 1..10080", p.Name, p.TimeoutMinutes)
	case p.DiskSizeGB < 40 || p.DiskSizeGB > 16384:
		// 40 GiB is the runner image's own root volume; a fleet override cannot shrink it.
		return fmt.Errorf("preset %s: diskSizeGb %d out of 40..16384", p.Name, p.DiskSizeGB)
	case p.MaxRunners < 0:
		return fmt.Errorf("preset %s: maxRunners %d is negative", p.Name, p.MaxRunners)
	case p.IdleMinutes < 1 || p.IdleMinutes > 7*24*60:
		return fmt.Errorf("preset %s: idleMinutes %d out of 1..10080", p.Name, p.IdleMinutes)
	case p.MaxCPU < 1 || p.MaxRAMGiB < 1:
		return fmt.Errorf("preset %s: maxCpu and maxRamGiB must be positive", p.Name)
	}
	return nil
}

// ArchLabels are the labels GitHub's runner reports for the architecture, which a job may ask for.
func (p Preset) ArchLabels() []string {
	if p.Architecture == "arm64" {
		return []string{"linux", "arm64"}
	}
	return []string{"linux", "x64"}
}

// Serves checks a job against the preset: the spotrunner label's options within bounds and every
// job label one the runner will carry. The error is the user-facing reason of a rejection.
func (p Preset) Serves(spec labels.Spec, jobLabels []string) error {
	if spec.CPU > p.MaxCPU {
		return fmt.Errorf("cpu=%d is over preset %s's maximum of %d", spec.CPU, p.Name, p.MaxCPU)
	}
	if spec.RAMGiB > p.MaxRAMGiB {
		return fmt.Errorf("ram=%d is over preset %s's maximum of %d GiB", spec.RAMGiB, p.Name, p.MaxRAMGiB)
	}
	servable := append([]string{"self-hosted"}, p.ArchLabels()...)
	for _, l := range p.Labels {
		servable = append(servable, strings.ToLower(l))
	}
	for _, l := range labels.Set(jobLabels) {
		if labels.IsSpotRunner(l) || slices.Contains(servable, l) {
			continue
		}
		return fmt.Errorf("label %q is not served by preset %s (it serves %s)", l, p.Name, strings.Join(servable, ", "))
	}
	return nil
}

// ErrUnknown means no preset of that name is configured: the job's label is wrong (user error).
var ErrUnknown = errors.New("unknown preset")

// ErrBroken means a configured preset's document is missing or invalid (operator-fixable).
var ErrBroken = errors.New("preset configuration broken")

// SSM is the part of the SSM client the store uses.
type SSM interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// Store reads presets through a cache. Safe for concurrent use.
type Store struct {
	api    SSM
	prefix string          // ParameterPrefix of the deployment
	names  map[string]bool // the configured presets
	ttl    time.Duration
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	p       Preset
	expires time.Time
}

// New returns a store for the configured preset names, whose documents are under prefix.
func New(api SSM, prefix string, names []string, ttl time.Duration) *Store {
	set := map[string]bool{}
	for _, n := range names {
		set[strings.ToLower(strings.TrimSpace(n))] = true
	}
	return &Store{api: api, prefix: prefix, names: set, ttl: ttl, now: time.Now, cache: map[string]cached{}}
}

// Get returns the preset name.
func (s *Store) Get(ctx context.Context, name string) (Preset, error) {
	if !s.names[name] {
		return Preset{}, fmt.Errorf("preset %q: %w", name, ErrUnknown)
	}
	s.mu.Lock()
	c, ok := s.cache[name]
	s.mu.Unlock()
	if ok && s.now().Before(c.expires) {
		return c.p, nil
	}
	out, err := s.api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(s.prefix + name)})
	var nf *types.ParameterNotFound
	if errors.As(err, &nf) {
		return Preset{}, fmt.Errorf("preset %q: parameter %s%s missing: %w", name, s.prefix, name, ErrBroken)
	}
	if err != nil {
		return Preset{}, fmt.Errorf("get preset %q: %w", name, err)
	}
	p, err := Parse([]byte(aws.ToString(out.Parameter.Value)))
	if err != nil {
		return Preset{}, fmt.Errorf("preset %q: %w: %v", name, ErrBroken, err)
	}
	if p.Name != name {
		return Preset{}, fmt.Errorf("preset %q: document names %q: %w", name, p.Name, ErrBroken)
	}
	s.mu.Lock()
	s.cache[name] = cached{p: p, expires: s.now().Add(s.ttl)}
	s.mu.Unlock()
	return p, nil
}

// document is a preset document as written: the product's documented field names (spotStrategy,
// timeout in minutes) are the canonical ones; strategy and timeoutMinutes stay accepted as
// aliases, and a document giving both spellings of one field must give them the same value.
type document struct {
	Preset
	SpotStrategy string `json:"spotStrategy"`
	Timeout      int    `json:"timeout"`
}

// Parse decodes, defaults and validates a preset document.
func Parse(doc []byte) (Preset, error) {
	var d document
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Preset{}, fmt.Errorf("decode preset: %w", err)
	}
	// Decode reads one value; anything after it (a second document pasted in) must not pass.
	if _, err := dec.Token(); err != io.EOF {
		return Preset{}, errors.New("decode preset: data after the document")
	}
	p := d.Preset
	switch {
	case d.SpotStrategy != "" && p.Strategy != "" && d.SpotStrategy != p.Strategy:
		return Preset{}, fmt.Errorf("preset %s: spotStrategy %q and its alias strategy %q disagree", p.Name, d.SpotStrategy, p.Strategy)
	case d.Timeout != 0 && p.TimeoutMinutes != 0 && d.Timeout != p.TimeoutMinutes:
		return Preset{}, fmt.Errorf("preset %s: timeout %d and its alias timeoutMinutes %d disagree", p.Name, d.Timeout, p.TimeoutMinutes)
	}
	if d.SpotStrategy != "" {
		p.Strategy = d.SpotStrategy
	}
	if d.Timeout != 0 {
		p.TimeoutMinutes = d.Timeout
	}
	p.Name = strings.ToLower(p.Name)
	p.applyDefaults()
	return p, p.Validate()
}
