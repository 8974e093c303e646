package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spotrunner/spotrunner/libs/state"
	"github.com/spotrunner/spotrunner/libs/statusdoc"
)

// The document's types are libs/statusdoc's, which the operator CLI reads too.
type (
	Document       = statusdoc.Document
	Configuration  = statusdoc.Configuration
	GitHub         = statusdoc.GitHub
	Preset         = statusdoc.Preset
	Runners        = statusdoc.Runners
	RecentActivity = statusdoc.RecentActivity
	Activity       = statusdoc.Activity
)

// Overall statuses.
const (
	statusReady    = "ready"
	statusBuilding = "building"
	statusDegraded = "degraded"
)

// overall is the document's status: degraded when a preset failed or has no AMI (outside its
// first build), the private key is not configured, or GitHub is not reachable; building when a
// preset is building and none of that holds; ready when every preset is ready with an AMI.
func overall(d Document) string {
	if !d.Configuration.PrivateKeyConfigured || d.GitHub.Status != githubConnected {
		return statusDegraded
	}
	building := false
	for _, p := range d.Presets {
		switch {
		case p.Status == state.ImageFailed, p.Status != state.ImageBuilding && p.AMIID == nil:
			return statusDegraded
		case p.Status == state.ImageBuilding:
			building = true
		}
	}
	if building {
		return statusBuilding
	}
	return statusReady
}

// message is the one-line summary: "1 preset ready, 1 preset building, 1 pending / 2 running".
// Parts that are zero are left out; singular and plural are right.
func message(d Document) string {
	var presetParts []string
	for _, st := range []string{state.ImageReady, state.ImageBuilding, state.ImageFailed} {
		n := 0
		for _, p := range d.Presets {
			if p.Status == st {
				n++
			}
		}
		if n > 0 {
			presetParts = append(presetParts, fmt.Sprintf("%d %s %s", n, plural(n, "preset", "presets"), st))
		}
	}
	var runnerParts []string
	for _, c := range []struct {
		n    int
		word string
	}{{d.Runners.Pending, "pending"}, {d.Runners.Provisioning, "provisioning"}, {d.Runners.Running, "running"}} {
		if c.n > 0 {
			runnerParts = append(runnerParts, fmt.Sprintf("%d %s", c.n, c.word))
		}
	}
	parts := presetParts
	if len(runnerParts) > 0 {
		parts = append(parts, strings.Join(runnerParts, " / "))
	}
	if len(parts) == 0 {
		return "no presets"
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// activity sums the hourly counters: the last 24 hours are the current hour and the 23 before it;
// the last hour is the current hour plus the share of the previous hour still within 60 minutes
// (counters are hourly, so this share is an estimate, rounded to the nearest job).
func activity(hours []state.Hour, now time.Time) RecentActivity {
	var ra RecentActivity
	cur := now.UTC().Truncate(time.Hour)
	share := 1 - now.Sub(cur).Hours() // of the previous hour, still within the last 60 minutes
	var prevC, prevF float64
	for _, h := range hours {
		if h.Start.Before(cur.Add(-23*time.Hour)) || h.Start.After(cur) {
			continue
		}
		ra.Last24Hours.Completed += h.Completed
		ra.Last24Hours.Failed += h.Failed
		switch {
		case h.Start.Equal(cur):
			ra.LastHour.Completed += h.Completed
			ra.LastHour.Failed += h.Failed
		case h.Start.Equal(cur.Add(-time.Hour)):
			prevC, prevF = float64(h.Completed)*share, float64(h.Failed)*share
		}
	}
	ra.LastHour.Completed += int(prevC + 0.5)
	ra.LastHour.Failed += int(prevF + 0.5)
	return ra
}

// presetsOf lists the configured presets in their order, with their records where they exist.
// A preset without a record has never had a build started.
func presetsOf(names []string, records []state.PresetImage) ([]Preset, []string) {
	byName := map[string]state.PresetImage{}
	for _, r := range records {
		byName[r.Name] = r
	}
	var (
		out      []Preset
		warnings []string
	)
	for _, name := range names {
		r, ok := byName[name]
		p := Preset{Name: name, Status: r.Status}
		if !ok {
			p.Status = state.ImageFailed
			warnings = append(warnings, fmt.Sprintf("Preset %s has no image build on record: start its Image Builder pipeline (spotrunner-%s), or redeploy the stack.", name, name))
		}
		if ami := r.UsableAMI(); ami != "" {
			p.AMIID = &ami
		}
		if !r.UpdatedAt.IsZero() {
			t := r.UpdatedAt.UTC().Format(time.RFC3339)
			p.UpdatedAt = &t
		}
		switch {
		case ok && r.Status == state.ImageFailed && p.AMIID != nil:
			warnings = append(warnings, fmt.Sprintf("The last image build of preset %s failed; jobs keep using its last good AMI. Check the pipeline's logs.", name))
		case ok && r.Status == state.ImageFailed:
			warnings = append(warnings, fmt.Sprintf("Preset %s has no AMI: its image build failed or its AMI was removed, and its jobs cannot start. Check the pipeline's logs and run it again.", name))
		case ok && r.Status != state.ImageBuilding && p.AMIID == nil:
			warnings = append(warnings, fmt.Sprintf("Preset %s has no AMI and no build under way: run its Image Builder pipeline.", name))
		}
		out = append(out, p)
	}
	return out, warnings
}
