package main

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestJITParameters (local world: moto's SSM behind world.SSM, and EC2; this rig's deployment and
// another one). JIT configs wait in SSM for:
//   - gone (201): an instance of ours, terminated: deleted.
//   - live (202): an instance of ours, running: kept (its bootstrap reads it).
//   - unknown 1..11: instances EC2 never knew, with no runner record: deleted (eleven, more than
//     one page of DescribeParameters).
//   - just launched (203): an instance EC2 does not list yet, recorded a moment ago: kept.
//   - other deployment (204): a terminated instance, the config tagged with another deployment:
//     kept (that deployment's reaper owns it).
//   - untagged (205): a terminated instance, the config without our tags: kept.
//
// JITInstances lists exactly this deployment's configs; a dry run deletes nothing; the real run
// deletes the twelve configs of gone instances and keeps the rest.
func TestJITParameters(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	mine, other := r.ownJITStack()
	ctx := context.Background()

	iids := map[string]string{}
	for name, id := range map[string]int64{"gone": 201, "live": 202, "untagged": 205} {
		iids[name] = r.launchedIn(id, mine)
	}
	iids["other deployment"] = r.launchedIn(204, other)
	for i := 1; i <= 11; i++ {
		iids["unknown "+strconv.Itoa(i)] = ghostInstance()
	}
	iids["just launched"] = ghostInstance()
	r.launchedOn(203, iids["just launched"], true)
	for _, name := range []string{"gone", "other deployment", "untagged"} {
		r.killInstance(iids[name])
	}
	params := map[string]string{}
	for name, iid := range iids {
		dep := mine
		switch name {
		case "other deployment":
			dep = other
		case "untagged":
			dep = ""
		}
		params[name] = r.putJIT(iid, dep)
	}

	listed, err := r.rp.params.JITInstances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wantListed []string
	for name, iid := range iids {
		if name != "other deployment" && name != "untagged" {
			wantListed = append(wantListed, iid)
		}
	}
	slices.Sort(wantListed)
	slices.Sort(listed)
	if diff := cmp.Diff(wantListed, listed); diff != "" {
		t.Errorf("JITInstances (-want +got):\n%s", diff)
	}

	all := map[string]bool{}
	for name := range params {
		all[name] = true
	}
	r.rp.cfg.DryRun = true
	p, err := r.runOnly(r.rp.jitParameters)
	r.rp.cfg.DryRun = false
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(all, r.jitLeft(params)); diff != "" {
		t.Errorf("the dry run deleted configs (-want +got):\n%s", diff)
	}
	if got := p.counts["jitParameters.would delete jit config"]; got != 12 {
		t.Errorf("the dry run would delete %d configs, want 12", got)
	}

	if _, err := r.runOnly(r.rp.jitParameters); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"live": true, "just launched": true, "other deployment": true, "untagged": true}
	if diff := cmp.Diff(want, r.jitLeft(params)); diff != "" {
		t.Errorf("configs left after jitParameters (-want +got):\n%s", diff)
	}
	// Deleting again is not an error: the bootstrap or another run may have been first.
	if err := r.rp.params.DeleteJIT(ctx, iids["gone"]); err != nil {
		t.Errorf("DeleteJIT of a config already deleted: %v", err)
	}
}
