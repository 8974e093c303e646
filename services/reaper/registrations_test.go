package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/ghessim"
	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/state"
)

// The helpers below serve the tests of registrations, jitParameters and records (with those of
// stuck_test.go: ownStack, launchedIn, killInstance, takeJob, runOnly, outcomes, relaunches).

// ownJITStack is ownStack with the reaper's JIT parameters scoped to this rig's deployment too:
// every rig shares one moto, and no other test's reaper may list this rig's configs.
func (r *rig) ownJITStack() (mine, other string) {
	mine, other = r.ownStack()
	r.rp.params = SSMParams{api: r.ssm, deployment: mine}
	return mine, other
}

// ownTable gives the rig a state table whose name the test knows, for raw writes behind the
// store's back, and returns the client and the name.
func (r *rig) ownTable() (*world.DynamoDB, string) {
	r.t.Helper()
	cfg := world.AWS(r.t)
	db, table := world.NewDynamoDB(cfg), world.StateTable(r.t, cfg)
	r.store = state.New(db, table).WithClock(func() time.Time { return r.now })
	r.rp.jobs = r.store
	return db, table
}

var ghostSeq atomic.Int64

// ghostInstance returns an instance id EC2 never knew.
func ghostInstance() string { return fmt.Sprintf("i-0dead%011x", ghostSeq.Add(1)) }

// provisioning records job id claimed for a lease of one minute from r.now and holding a slot,
// its launch not recorded: what a provisioner that died after AcquireSlot leaves.
func (r *rig) provisioning(id int64) {
	r.t.Helper()
	ctx := context.Background()
	labels := []string{"self-hosted", "spotrunner/linux-x64"}
	j := state.Job{Host: r.host, ID: id, Owner: "acme", OwnerType: "Organization", Repo: "app", InstallationID: orgInst,
		RunID: 1, RunAttempt: 1, Labels: labels, LabelSet: labels, ReceivedAt: r.now}
	if _, _, err := r.store.CreateJob(ctx, j, state.Queued); err != nil {
		r.t.Fatal(err)
	}
	r.sim.AddJob(ghessim.Job{ID: id, RunID: 1, RunAttempt: 1, Owner: "acme", Repo: "app", Labels: labels})
	if _, err := r.store.Claim(ctx, r.host, id, time.Minute); err != nil {
		r.t.Fatal(err)
	}
	if err := r.store.AcquireSlot(ctx, r.host, id, "linux-x64", 0, 0, state.LaunchSpec{ImageID: r.world.Images["x86_64"]}); err != nil {
		r.t.Fatal(err)
	}
}

// setCounter writes slot counter CAP/<name> to n behind the store's back (a drift).
func setCounter(t *testing.T, db *world.DynamoDB, table, name string, n int) {
	t.Helper()
	_, err := db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName:                 aws.String(table),
		Key:                       map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: "CAP"}, "sk": &dbtypes.AttributeValueMemberS{Value: name}},
		UpdateExpression:          aws.String("SET #c = :n"),
		ExpressionAttributeNames:  map[string]string{"#c": "count"},
		ExpressionAttributeValues: map[string]dbtypes.AttributeValue{":n": &dbtypes.AttributeValueMemberN{Value: fmt.Sprint(n)}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// putJIT leaves a JIT config for instance iid as the provisioner does (SecureString, tagged ours,
// deployment dep and the instance's ARN); dep "" leaves it untagged. The name is under the
// reaper's own deployment whatever dep, so the tag alone must keep another deployment's out.
// It returns its name.
func (r *rig) putJIT(iid, dep string) string {
	r.t.Helper()
	name := fleet.JITParameterPrefix(r.rp.params.(SSMParams).deployment) + iid
	in := &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String("jit-config-of-" + iid),
		Type: ssmtypes.ParameterTypeSecureString, Tier: ssmtypes.ParameterTierStandard}
	if dep != "" {
		in.Tags = []ssmtypes.Tag{
			{Key: aws.String(fleet.ManagedTag), Value: aws.String("true")},
			{Key: aws.String(fleet.DeploymentTag), Value: aws.String(dep)},
			{Key: aws.String("spotrunner:instance-arn"), Value: aws.String("arn:aws:ec2:us-east-1:123456789012:instance/" + iid)},
		}
	}
	// A retry of a put that went through (moto drops keep-alive connections now and then) finds
	// the uniquely named parameter there: that is ours.
	var exists *ssmtypes.ParameterAlreadyExists
	if _, err := r.ssm.PutParameter(context.Background(), in); err != nil && !errors.As(err, &exists) {
		r.t.Fatal(err)
	}
	return name
}

// jitLeft returns, by fixture, whether its JIT config is still in SSM.
func (r *rig) jitLeft(names map[string]string) map[string]bool {
	r.t.Helper()
	out := map[string]bool{}
	for fixture, name := range names {
		_, err := r.ssm.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(name)})
		var nf *ssmtypes.ParameterNotFound
		switch {
		case err == nil:
			out[fixture] = true
		case !errors.As(err, &nf):
			r.t.Fatal(err)
		}
	}
	return out
}

// runnerListCalls counts the GitHub requests that listed runners.
func runnerListCalls(sim *ghessim.Server) int {
	n := 0
	for _, c := range sim.Calls() {
		if c.Method == "GET" && strings.HasSuffix(c.Path, "/actions/runners") {
			n++
		}
	}
	return n
}

// deadUntouched is a registered runner whose instance is gone, left as it was: still registered,
// idle, holding its slot, its job launched.
var deadUntouched = outcome{Registered: true, Runner: state.Idle, Slot: true, Job: state.Launched}

// TestRegistrations (local world, this rig's deployment): at t0 runners are launched and
// registered for jobs 401-407; six minutes later (past REGISTRATION_LAG) one more for 408. Then
// registrations runs, first dry, then for real.
//   - dead (401): instance terminated, runner offline: deregistered, done, slot back.
//   - dead, unknown to EC2 (402): EC2 never knew the instance: the same.
//   - busy on GitHub (403): instance terminated, but the runner took its job on GitHub: untouched.
//   - online on GitHub (404): instance terminated, runner still online: untouched.
//   - gone from GitHub (405): recorded busy, its job completed (GitHub removed the JIT runner),
//     instance terminated: done, slot back, nothing deleted.
//   - alive (406): instance running: untouched.
//   - never registered (407): no RunnerID, instance terminated: untouched (records' to retire).
//   - young (408): instance terminated under REGISTRATION_LAG after launch: untouched.
//
// The dry run changes nothing; the real run leaves five slots of eight.
func TestRegistrations(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	mine, _ := r.ownJITStack()
	ctx := context.Background()
	fx := map[string]fixture{}
	for name, id := range map[string]int64{"dead": 401, "busy on GitHub": 403, "online on GitHub": 404, "gone from GitHub": 405, "alive": 406} {
		fx[name] = fixture{r.launchedIn(id, mine), id}
	}
	fx["dead, unknown to EC2"] = fixture{ghostInstance(), 402}
	r.launchedOn(402, fx["dead, unknown to EC2"].iid, true)
	fx["never registered"] = fixture{r.instance(r.tags(407, mine)), 407}
	r.launchedOn(407, fx["never registered"].iid, false)
	r.takeJob(fx["busy on GitHub"].iid, 403)
	if _, err := r.sim.ConnectRunner(r.jitConfigs[fx["online on GitHub"].iid]); err != nil {
		t.Fatal(err)
	}
	r.startedHere(fx["gone from GitHub"].iid, 405)
	if err := r.sim.CompleteJob(405, "success"); err != nil {
		t.Fatal(err)
	}
	r.now = r.now.Add(6 * time.Minute)
	fx["young"] = fixture{r.launchedIn(408, mine), 408}
	for _, name := range []string{"dead", "busy on GitHub", "online on GitHub", "gone from GitHub", "never registered", "young"} {
		r.killInstance(fx[name].iid)
	}

	before := r.outcomes(fx)
	r.rp.cfg.DryRun = true
	p, err := r.runOnly(r.rp.registrations)
	r.rp.cfg.DryRun = false
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, r.outcomes(fx)); diff != "" {
		t.Errorf("the dry run changed the world (-before +after):\n%s", diff)
	}
	if got := p.counts["registrations.would deregister runner"]; got != 2 {
		t.Errorf("the dry run would deregister %d runners, want 2 (counts %v)", got, p.counts)
	}
	if n, _, _ := r.store.Slots(ctx); n != 8 {
		t.Errorf("the dry run left %d slots, want 8", n)
	}

	if _, err := r.runOnly(r.rp.registrations); err != nil {
		t.Fatal(err)
	}
	want := map[string]outcome{
		"dead":                 {Runner: state.Done, Job: state.Launched},
		"dead, unknown to EC2": {Runner: state.Done, Job: state.Launched},
		"busy on GitHub":       deadUntouched,
		"online on GitHub":     deadUntouched,
		"gone from GitHub":     {Runner: state.Done, Job: state.Running},
		"alive":                {Live: true, Registered: true, Runner: state.Idle, Slot: true, Job: state.Launched},
		"never registered":     {Runner: state.Idle, Slot: true, Job: state.Launched},
		"young":                deadUntouched,
	}
	if diff := cmp.Diff(want, r.outcomes(fx)); diff != "" {
		t.Errorf("after registrations (-want +got):\n%s", diff)
	}
	if n, _, _ := r.store.Slots(ctx); n != 5 {
		t.Errorf("%d slots counted, want 5", n)
	}
}

// TestRegistrationsGitHubFaults (local world, GitHub failing): two registered runners whose
// instances are gone (jobs 421, 422), and registrations runs once while GitHub fails one kind of
// call. Whatever fails, nothing is deleted and nothing is marked done: both stay registered, idle,
// holding their slots, and the step itself does not fail (the next run retries).
//   - outage: listing runners answers 503: GitHub is asked once, not once per runner.
//   - rate limited: a secondary rate limit on the list: likewise asked once.
//   - busy at delete: the delete answers 422 (the runner took a job a moment ago).
//   - delete fails: the delete answers 502.
func TestRegistrationsGitHubFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fail      func(*ghessim.Server)
		wantLists int // requests listing runners
	}{
		{"outage", func(s *ghessim.Server) { s.Fail("GET /orgs/*/actions/runners", 10, 503) }, 1},
		{"rate limited", func(s *ghessim.Server) { s.Fail("GET /orgs/*/actions/runners", 10, 403, ghessim.WithRateLimit()) }, 1},
		{"busy at delete", func(s *ghessim.Server) { s.Fail("DELETE /orgs/*/actions/runners/*", 10, 422) }, 2},
		{"delete fails", func(s *ghessim.Server) { s.Fail("DELETE /orgs/*/actions/runners/*", 10, 502) }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			mine, _ := r.ownJITStack()
			fx := map[string]fixture{"first": {r.launchedIn(421, mine), 421}, "second": {r.launchedIn(422, mine), 422}}
			for _, f := range fx {
				r.killInstance(f.iid)
			}
			r.now = r.now.Add(6 * time.Minute)
			tt.fail(r.sim)
			lists := runnerListCalls(r.sim)
			if _, err := r.runOnly(r.rp.registrations); err != nil {
				t.Errorf("registrations failed: %v; want the runners skipped", err)
			}
			if got := runnerListCalls(r.sim) - lists; got != tt.wantLists {
				t.Errorf("GitHub asked %d times for runners, want %d", got, tt.wantLists)
			}
			want := map[string]outcome{"first": deadUntouched, "second": deadUntouched}
			if diff := cmp.Diff(want, r.outcomes(fx)); diff != "" {
				t.Errorf("after registrations (-want +got):\n%s", diff)
			}
		})
	}
}
