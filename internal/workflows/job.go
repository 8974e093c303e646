package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/spotrunner/spotrunner/libs/labels"
	"github.com/spotrunner/spotrunner/libs/presets"
)

// checker collects the findings of one file.
type checker struct {
	file     string
	known    map[string]presets.Preset
	findings []Finding
}

func (c *checker) add(job string, n *yaml.Node, sev Severity, reason string) {
	c.findings = append(c.findings, Finding{
		File: c.file, Line: n.Line, Column: n.Column, Job: job, Label: n.Value, Severity: sev, Reason: reason,
	})
}

// item is one runs-on label as written.
type item struct {
	node *yaml.Node
	// plainFlow: an unquoted scalar in a flow list or mapping, where YAML ends a scalar at a comma.
	plainFlow bool
}

func (it item) value() string { return it.node.Value }

// job checks the runs-on of one job: expressions, labels YAML split, then what the provisioner
// checks, in its order (see the package comment).
func (c *checker) job(id string, job *yaml.Node) {
	if job.Kind != yaml.MappingNode {
		return
	}
	if _, uses := lookup(job, "uses"); uses != nil {
		return // a reusable workflow's jobs are checked in its own file
	}
	_, runsOn := lookup(job, "runs-on")
	if runsOn == nil {
		return
	}
	items, expr := readRunsOn(runsOn)
	if expr != nil {
		c.add(id, expr, SeverityUnchecked, "the job's labels are an expression, known only when the workflow runs; "+
			"they cannot be checked statically")
		return
	}
	head := splits(items)
	var literal []item
	for i, it := range items {
		switch {
		case isExpression(it.value()):
			c.add(id, it.node, SeverityUnchecked, "label is an expression, known only when the workflow runs; "+
				"it cannot be checked statically")
		case head[i] >= 0:
			c.add(id, it.node, SeverityError, splitReason(it.value(), joined(items, head, head[i])))
		default:
			literal = append(literal, it)
		}
	}
	c.checkLabels(id, literal)
}

// checkLabels checks a job's literal labels as the provisioner does: Find, the preset, Serves.
func (c *checker) checkLabels(id string, items []item) {
	values := make([]string, len(items))
	for i, it := range items {
		values[i] = it.value()
	}
	spec, ours, err := labels.Find(values)
	if !ours {
		return
	}
	ourItem := items[slices.IndexFunc(values, labels.IsSpotRunner)]
	if err != nil {
		reason := err.Error()
		if le, ok := errors.AsType[*labels.Error](err); ok {
			reason = le.Reason
		}
		c.add(id, ourItem.node, SeverityError, reason)
		return
	}
	p, ok := c.known[spec.Preset]
	if !ok {
		c.add(id, ourItem.node, SeverityError, fmt.Sprintf("unknown preset %q; %s", spec.Preset, knownPresets(c.known)))
		return
	}
	if err := p.Serves(spec, nil); err != nil {
		c.add(id, ourItem.node, SeverityError, err.Error())
	}
	// The options were checked above. Each other label is checked alone, so that every refused
	// label is reported where it is written, not only the first.
	bare := labels.Spec{Label: spec.Label, Preset: spec.Preset}
	for _, it := range items {
		if labels.IsSpotRunner(it.value()) {
			continue
		}
		if err := p.Serves(bare, []string{it.value()}); err != nil {
			c.add(id, it.node, SeverityError, err.Error())
		}
	}
}

func knownPresets(known map[string]presets.Preset) string {
	if len(known) == 0 {
		return "no presets are configured"
	}
	names := make([]string, 0, len(known))
	for name := range known {
		names = append(names, name)
	}
	slices.Sort(names)
	return "known presets: " + strings.Join(names, ", ")
}

// readRunsOn returns the labels of a runs-on value: a label, a list of labels, or the object
// form {group: g, labels: label-or-list}. expr is set instead when the labels are one expression.
func readRunsOn(v *yaml.Node) (items []item, expr *yaml.Node) {
	switch v.Kind {
	case yaml.ScalarNode:
		return scalarItems(v, false)
	case yaml.SequenceNode:
		return listItems(v), nil
	case yaml.MappingNode:
		return objectItems(v)
	}
	return nil, nil
}

func scalarItems(v *yaml.Node, flow bool) ([]item, *yaml.Node) {
	switch {
	case v.Tag == "!!null":
		return nil, nil
	case isExpression(v.Value):
		return nil, v
	}
	return []item{{node: v, plainFlow: flow && isPlain(v)}}, nil
}

func listItems(list *yaml.Node) []item {
	flow := list.Style&yaml.FlowStyle != 0
	var items []item
	for _, n := range list.Content {
		if n = deref(n); n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			items = append(items, item{node: n, plainFlow: flow && isPlain(n)})
		}
	}
	return items
}

// objectItems reads the labels of {group: g, labels: ...}. In a flow mapping an unquoted
// "labels: spotrunner/x/cpu=4,ram=16" is split too: "ram=16" becomes a key without a value, kept
// here as a label so that the split is reported.
func objectItems(m *yaml.Node) ([]item, *yaml.Node) {
	flow := m.Style&yaml.FlowStyle != 0
	var items []item
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "labels" {
			continue
		}
		v := deref(m.Content[i+1])
		switch v.Kind {
		case yaml.ScalarNode:
			var expr *yaml.Node
			if items, expr = scalarItems(v, flow); expr != nil {
				return nil, expr
			}
		case yaml.SequenceNode:
			items = listItems(v)
		}
		for i += 2; flow && i+1 < len(m.Content); i += 2 {
			k, val := m.Content[i], deref(m.Content[i+1])
			if !isPlain(k) || !isBareOption(k.Value) || val.Tag != "!!null" {
				break
			}
			items = append(items, item{node: k, plainFlow: true})
		}
		return items, nil
	}
	return nil, nil
}

// splits finds the labels YAML cut off a spotrunner label: bare options (ram=16) that follow an
// unquoted spotrunner label, unquoted, in a flow list. head[i] is the index of that spotrunner
// label for such an item, -1 for every other item.
func splits(items []item) []int {
	head := make([]int, len(items))
	for i, it := range items {
		head[i] = -1
		if i == 0 || !it.plainFlow || !isBareOption(it.value()) {
			continue
		}
		prev := items[i-1]
		switch {
		case head[i-1] >= 0:
			head[i] = head[i-1]
		case prev.plainFlow && labels.IsSpotRunner(prev.value()) && !isExpression(prev.value()):
			head[i] = i - 1
		}
	}
	return head
}

// joined is the label as the user meant it: the spotrunner label at h and the options cut off it.
func joined(items []item, head []int, h int) string {
	parts := []string{items[h].value()}
	for i := h + 1; i < len(items) && head[i] == h; i++ {
		parts = append(parts, items[i].value())
	}
	return strings.Join(parts, ",")
}

// splitReason says that YAML cut option off label, and how to quote it; and, when the label
// quoted is still malformed, why, so that one run tells the whole story.
func splitReason(option, label string) string {
	reason := fmt.Sprintf("YAML split the label at the comma, so %q is a label of its own (which no runner carries); "+
		"quote the whole label: %q", option, label)
	if _, err := labels.Parse(label); err != nil {
		if le, ok := errors.AsType[*labels.Error](err); ok {
			reason += "; quoted, it is still refused: " + le.Reason
		}
	}
	return reason
}

// isBareOption reports whether a label looks like a spotrunner option (name=value) on its own.
func isBareOption(label string) bool {
	name, _, ok := strings.Cut(label, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.Contains(label, "/") {
		return false
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// isExpression reports whether GitHub evaluates s when the workflow runs.
func isExpression(s string) bool { return strings.Contains(s, "${{") }

// isPlain reports whether a scalar is written unquoted.
func isPlain(n *yaml.Node) bool {
	return n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0
}
