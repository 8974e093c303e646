package main

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/spotrunner/spotrunner/libs/state"
)

// view is the part of a preset record a scenario checks.
type view struct {
	Status, AMI, Previous, Build string
}

func viewOf(p state.PresetImage) view {
	return view{p.Status, p.AMIID, p.PreviousAMIID, p.Build}
}

// TestImageLifecycle (local world: moto's DynamoDB and SSM, the fake Image Builder): real-shaped
// EventBridge events of testdata/ for each build state, played in the orders production sees,
// and the preset record and published AMI after each.
func TestImageLifecycle(t *testing.T) {
	t.Parallel()

	// First build: building, then available: the preset gets its first AMI, published in SSM.
	t.Run("first build", func(t *testing.T) {
		t.Parallel()
		r := newRig(t)
		img := r.ib.addImage(r.x64, "BUILDING", "")
		r.send("image-building.json", img)
		if diff := cmp.Diff(view{"building", "", "", "1.0.1/1"}, viewOf(r.preset("linux-x64"))); diff != "" {
			t.Errorf("after BUILDING (-want +got):\n%s", diff)
		}
		r.ib.finish(img, "AVAILABLE", "ami-0aaa0000000000001")
		r.send("image-available.json", img)
		if diff := cmp.Diff(view{"ready", "ami-0aaa0000000000001", "", "1.0.1/1"}, viewOf(r.preset("linux-x64"))); diff != "" {
			t.Errorf("after AVAILABLE (-want +got):\n%s", diff)
		}
		if got := r.published("linux-x64"); got != "ami-0aaa0000000000001" {
			t.Errorf("published AMI %q", got)
		}
	})

	// Weekly rebuild: while build 2 runs, jobs keep the AMI of build 1; then build 2's AMI is
	// current and build 1's the previous.
	t.Run("weekly rebuild", func(t *testing.T) {
		t.Parallel()
		r := newRig(t)
		first := r.ib.addImage(r.x64, "AVAILABLE", "ami-0aaa0000000000001")
		r.send("image-available.json", first)
		second := r.ib.addImage(r.x64, "BUILDING", "")
		r.send("image-building.json", second)
		p := r.preset("linux-x64")
		if diff := cmp.Diff(view{"building", "ami-0aaa0000000000001", "", "1.0.1/2"}, viewOf(p)); diff != "" {
			t.Errorf("during the rebuild (-want +got):\n%s", diff)
		}
		if p.UsableAMI() != "ami-0aaa0000000000001" {
			t.Errorf("jobs would launch from %q during the rebuild", p.UsableAMI())
		}
		r.ib.finish(second, "AVAILABLE", "ami-0bbb0000000000002")
		r.send("image-available.json", second)
		if diff := cmp.Diff(view{"ready", "ami-0bbb0000000000002", "ami-0aaa0000000000001", "1.0.1/2"}, viewOf(r.preset("linux-x64"))); diff != "" {
			t.Errorf("after the rebuild (-want +got):\n%s", diff)
		}
	})

	// Failed and cancelled rebuilds: the preset is failed with the reason, its AMI keeps serving.
	for _, tc := range []struct{ file, status, reason string }{
		{"image-failed.json", "FAILED", "build 1.0.1/2: Image Builder failed to run tests: test component spotrunner-linux-x64-runner exited with code 1"},
		{"image-cancelled.json", "CANCELLED", "build 1.0.1/2: Image creation cancelled by user"},
	} {
		t.Run(tc.status+" rebuild", func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.send("image-available.json", r.ib.addImage(r.x64, "AVAILABLE", "ami-0aaa0000000000001"))
			second := r.ib.addImage(r.x64, tc.status, "")
			r.send(tc.file, second)
			p := r.preset("linux-x64")
			if diff := cmp.Diff(view{"failed", "ami-0aaa0000000000001", "", "1.0.1/2"}, viewOf(p)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if p.Reason != tc.reason || p.UsableAMI() != "ami-0aaa0000000000001" {
				t.Errorf("reason %q, usable %q; want %q and the first AMI", p.Reason, p.UsableAMI(), tc.reason)
			}
		})
	}

	// Out of order and twice: a late BUILDING after AVAILABLE, a duplicate AVAILABLE, build 1's
	// AVAILABLE after build 2's, build 1's FAILED after build 2's AVAILABLE: none moves it back.
	t.Run("out of order and duplicates", func(t *testing.T) {
		t.Parallel()
		r := newRig(t)
		first := r.ib.addImage(r.x64, "AVAILABLE", "ami-0aaa0000000000001")
		second := r.ib.addImage(r.x64, "AVAILABLE", "ami-0bbb0000000000002")
		r.send("image-available.json", second)
		want := r.preset("linux-x64")
		r.send("image-building.json", second)
		r.send("image-available.json", second)
		r.send("image-available.json", first)
		r.send("image-building.json", first)
		r.send("image-failed.json", first)
		got := r.preset("linux-x64")
		if diff := cmp.Diff(want, got, cmpopts.EquateComparable()); diff != "" {
			t.Errorf("late and duplicate events changed the record (-want +got):\n%s", diff)
		}
		if got.Status != "ready" || got.AMIID != "ami-0bbb0000000000002" {
			t.Errorf("record %+v, want ready on build 2's AMI", got)
		}
	})

	// An AMI deregistered (by hand, or by the lifecycle policy): the preset forgets it, the
	// previous AMI serves and is published; with none left the preset is failed and has no AMI.
	t.Run("deregistered AMI", func(t *testing.T) {
		t.Parallel()
		r := newRig(t)
		r.send("image-available.json", r.ib.addImage(r.x64, "AVAILABLE", "ami-0aaa0000000000001"))
		r.send("image-available.json", r.ib.addImage(r.x64, "AVAILABLE", "ami-0bbb0000000000002"))
		r.send("ami-deregistered.json", "ami-0bbb0000000000002")
		p := r.preset("linux-x64")
		if p.UsableAMI() != "ami-0aaa0000000000001" || r.published("linux-x64") != "ami-0aaa0000000000001" {
			t.Errorf("after the current AMI went: usable %q, published %q; want the previous one", p.UsableAMI(), r.published("linux-x64"))
		}
		r.send("ami-deregistered.json", "ami-0ccc0000000000009") // not ours: nothing changes
		r.send("ami-deregistered.json", "ami-0aaa0000000000001")
		p = r.preset("linux-x64")
		if p.UsableAMI() != "" || p.Status != "failed" || r.published("linux-x64") != "" {
			t.Errorf("after both went: %+v, published %q; want no AMI, failed, nothing published", p, r.published("linux-x64"))
		}
	})

	// Not this stack's: an image of another account's pipeline, and an image that no longer
	// exists, are ignored; no preset record is written.
	t.Run("not ours", func(t *testing.T) {
		t.Parallel()
		r := newRig(t)
		r.send("image-available.json", r.ib.addImage(r.foreign, "AVAILABLE", "ami-0fff0000000000001"))
		r.send("image-available.json", "arn:aws:imagebuilder:us-east-1:123456789012:image/spotrunner-linux-x64/1.0.1/99")
		if _, err := r.store.PresetImage(context.Background(), "linux-x64"); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("preset record written for images not ours: %v", err)
		}
	})
}

// TestApplyImage: the record after one event, for the orders that matter; ErrUnchanged where the
// event must not move it.
func TestApplyImage(t *testing.T) {
	t.Parallel()
	b := func(s string) build { v, _ := parseVersion(s); return v }
	ready := state.PresetImage{Status: "ready", AMIID: "ami-2", AMIBuild: "1.0.1/2", PreviousAMIID: "ami-1", Build: "1.0.1/2"}
	building3 := state.PresetImage{Status: "building", AMIID: "ami-2", AMIBuild: "1.0.1/2", PreviousAMIID: "ami-1", Build: "1.0.1/3"}
	tests := []struct {
		name      string
		cur       state.PresetImage
		exists    bool
		ev        imageEvent
		want      view
		unchanged bool
	}{
		{name: "first event of a new preset", ev: imageEvent{build: b("1.0.1/1"), status: "BUILDING"}, want: view{"building", "", "", "1.0.1/1"}},
		{name: "recorded building at deploy, then available", cur: state.PresetImage{Status: "building"}, exists: true,
			ev: imageEvent{build: b("1.0.1/1"), status: "AVAILABLE", ami: "ami-1"}, want: view{"ready", "ami-1", "", "1.0.1/1"}},
		{name: "newer build starts", cur: ready, exists: true, ev: imageEvent{build: b("1.0.1/3"), status: "TESTING"}, want: view{"building", "ami-2", "ami-1", "1.0.1/3"}},
		{name: "newer build available", cur: building3, exists: true, ev: imageEvent{build: b("1.0.1/3"), status: "AVAILABLE", ami: "ami-3"}, want: view{"ready", "ami-3", "ami-2", "1.0.1/3"}},
		{name: "newer recipe version", cur: ready, exists: true, ev: imageEvent{build: b("1.0.2/1"), status: "AVAILABLE", ami: "ami-9"}, want: view{"ready", "ami-9", "ami-2", "1.0.2/1"}},
		{name: "10 sorts after 9", cur: state.PresetImage{Status: "ready", AMIID: "ami-9", AMIBuild: "1.0.1/9", Build: "1.0.1/9"}, exists: true,
			ev: imageEvent{build: b("1.0.1/10"), status: "AVAILABLE", ami: "ami-10"}, want: view{"ready", "ami-10", "ami-9", "1.0.1/10"}},
		{name: "newer build failed", cur: building3, exists: true, ev: imageEvent{build: b("1.0.1/3"), status: "FAILED", reason: "x"}, want: view{"failed", "ami-2", "ami-1", "1.0.1/3"}},
		{name: "older build available while a newer one runs", cur: state.PresetImage{Status: "building", AMIID: "ami-1", AMIBuild: "1.0.1/1", Build: "1.0.1/3"}, exists: true,
			ev: imageEvent{build: b("1.0.1/2"), status: "AVAILABLE", ami: "ami-2"}, unchanged: true},
		{name: "late BUILDING of the current AMI's build", cur: ready, exists: true, ev: imageEvent{build: b("1.0.1/2"), status: "BUILDING"}, unchanged: true},
		{name: "duplicate AVAILABLE", cur: ready, exists: true, ev: imageEvent{build: b("1.0.1/2"), status: "AVAILABLE", ami: "ami-2"}, unchanged: true},
		{name: "older build available", cur: ready, exists: true, ev: imageEvent{build: b("1.0.1/1"), status: "AVAILABLE", ami: "ami-1"}, unchanged: true},
		{name: "duplicate BUILDING", cur: building3, exists: true, ev: imageEvent{build: b("1.0.1/3"), status: "BUILDING"}, unchanged: true},
		{name: "late BUILDING after FAILED", cur: state.PresetImage{Status: "failed", AMIID: "ami-2", AMIBuild: "1.0.1/2", Build: "1.0.1/3"}, exists: true,
			ev: imageEvent{build: b("1.0.1/3"), status: "BUILDING"}, unchanged: true},
		{name: "duplicate FAILED", cur: state.PresetImage{Status: "failed", AMIID: "ami-2", AMIBuild: "1.0.1/2", Build: "1.0.1/3", Reason: "r"}, exists: true,
			ev: imageEvent{build: b("1.0.1/3"), status: "FAILED", reason: "r"}, unchanged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := applyImage(tt.cur, tt.exists, tt.ev)
			if tt.unchanged {
				if !errors.Is(err, state.ErrUnchanged) {
					t.Errorf("got %+v, %v; want unchanged", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, viewOf(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
