// Package workflows checks, without running anything, the runs-on of GitHub Actions workflow
// files against Spot Runner's labels and presets: which jobs would be rejected, or never picked
// up, and why.
//
// A job is ours when labels.Find finds a spotrunner label among its runs-on labels, as the ingest
// function decides. For each of our jobs Check applies, in the provisioner's order, the checks
// the provisioner applies, with the reasons it records:
//
//  1. labels.Find: a malformed spotrunner label, or several different ones.
//  2. The preset lookup: an unknown preset (the finding names the known ones).
//  3. presets.Preset.Serves: options over the preset's bounds, labels the preset's runners do not
//     carry. Every refused label is reported at its own line, not only the first.
//
// One mistake is not the provisioner's to see: an unquoted flow list
// [self-hosted, spotrunner/linux-x64/cpu=4,ram=16] is split by YAML at the comma into
// "spotrunner/linux-x64/cpu=4" and "ram=16". The provisioner would refuse "ram=16" as a label the
// preset does not serve; Check says what happened and how to quote the label instead.
//
// Expressions (${{ matrix.os }}) are evaluated only when the workflow runs: a runs-on or a label
// holding one is reported as unchecked, never as an error. Matrices are not evaluated.
package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/spotrunner/spotrunner/libs/presets"
)

// Severity says what a finding means for the job.
type Severity string

const (
	// SeverityError: the job would be rejected, or never picked up by one of our runners.
	SeverityError Severity = "error"
	// SeverityUnchecked: the job's labels hold an expression, known only when the workflow runs.
	SeverityUnchecked Severity = "unchecked"
)

// Finding is one thing wrong with, or not checkable in, a job's runs-on.
type Finding struct {
	File   string `json:"file"`
	Line   int    `json:"line"`   // 1-based
	Column int    `json:"column"` // 1-based
	// Job is the job's id (its key under jobs:).
	Job string `json:"job"`
	// Label is the label, or the runs-on expression, as written.
	Label    string   `json:"label"`
	Severity Severity `json:"severity"`
	// Reason says what is wrong and how to write it instead; for an error, it is the reason the
	// provisioner would record (or, for a label YAML split, the cause of that reason).
	Reason string `json:"reason"`
}

// FileError says why a file cannot be checked: it is not YAML, or not a GitHub workflow.
type FileError struct {
	File   string
	Line   int // 1-based; 0 when unknown
	Column int // 1-based; 0 when unknown
	Reason string
}

func (e *FileError) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Reason)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Reason)
}

// Check reads the workflow data, named file in findings and errors, and checks the runs-on of
// each of its jobs against known, the configured presets by name (see ReadPresets). The findings
// are in file order. The error is a *FileError when data is not YAML or not a workflow.
func Check(file string, data []byte, known map[string]presets.Preset) ([]Finding, error) {
	jobs, err := readJobs(file, data)
	if err != nil {
		return nil, err
	}
	c := checker{file: file, known: known}
	for i := 0; i+1 < len(jobs.Content); i += 2 {
		c.job(jobs.Content[i].Value, deref(jobs.Content[i+1]))
	}
	slices.SortStableFunc(c.findings, func(a, b Finding) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return c.findings, nil
}

// readJobs parses data and returns its jobs mapping.
func readJobs(file string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		var le *yaml.LoadError
		if errors.As(err, &le) {
			reason := "not valid YAML: " + le.Message
			if le.ContextMsg != "" && le.ContextMark.Line > 0 && le.ContextMark.Line != le.Mark.Line {
				// The mistake is often where the construct started, e.g. an unclosed [.
				reason += fmt.Sprintf(" (%s started on line %d)", strings.TrimPrefix(le.ContextMsg, "while parsing "),
					le.ContextMark.Line)
			}
			return nil, &FileError{File: file, Line: le.Mark.Line, Column: le.Mark.Column, Reason: reason}
		}
		return nil, &FileError{File: file, Reason: "not valid YAML: " + err.Error()}
	}
	if len(doc.Content) == 0 {
		return nil, &FileError{File: file, Reason: "not a GitHub workflow: the file has no YAML document"}
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, &FileError{File: file, Line: root.Line, Column: root.Column,
			Reason: "not a GitHub workflow: the top level is " + kindName(root) + ", not a mapping with jobs:"}
	}
	key, jobs := lookup(root, "jobs")
	if jobs == nil {
		return nil, &FileError{File: file, Line: root.Line, Column: root.Column,
			Reason: "not a GitHub workflow: no jobs: at the top level"}
	}
	if jobs.Kind != yaml.MappingNode {
		return nil, &FileError{File: file, Line: key.Line, Column: key.Column,
			Reason: "not a GitHub workflow: jobs: is " + kindName(jobs) + ", not a mapping of job ids to jobs"}
	}
	return jobs, nil
}

// lookup returns the key node and the (dereferenced) value node of key in mapping m, or nils.
func lookup(m *yaml.Node, key string) (k, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return m.Content[i], deref(m.Content[i+1])
		}
	}
	return nil, nil
}

// deref follows an alias (*anchor) to the node it names; positions are then those of the anchored
// text, which is where a wrong label is written.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		return "empty"
	case n.Kind == yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "not a value"
}
