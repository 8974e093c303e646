package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/spotrunner/spotrunner/internal/ec2world"
	"github.com/spotrunner/spotrunner/internal/ghessim"
	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

const (
	appID   = 4242
	orgInst = 11
)

// rig is one reaper against its own corner of the local world: a fresh state table, FIFO queue and
// VPC/launch template in moto (EC2 behind ec2world), SSM behind world.SSM, and the GHES simulator
// with the org acme (installation 11). Its deployment name is its own (rigs share one moto: a
// whole pass must never see another test's instances as its own). Its clock is r.now.
type rig struct {
	t      *testing.T
	rp     *Reaper
	host   string
	sim    *ghessim.Server
	ec2    *ec2world.EC2
	ec2raw *ec2.Client
	world  ec2world.World
	fleet  *fleet.Client
	store  *state.Store
	ssm    *world.SSM
	sqs    *sqs.Client
	queue  string
	now    time.Time
	seq    int64
	// jitConfigs are the configs registered by launched, by instance, for tests that boot one.
	jitConfigs map[string]string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	cfg := world.AWS(t)
	r := &rig{t: t, host: strings.ToLower(world.Name(t, "ghes")) + ".example", now: time.Now().UTC(), jitConfigs: map[string]string{}}
	r.ec2raw = ec2.NewFromConfig(cfg)
	r.ec2 = ec2world.New(r.ec2raw)
	r.world = ec2world.Setup(t, r.ec2raw)
	r.fleet = fleet.New(r.ec2)
	r.store = state.New(world.NewDynamoDB(cfg), world.StateTable(t, cfg)).WithClock(func() time.Time { return r.now })
	r.ssm = world.NewSSM(cfg)
	r.sqs = sqs.NewFromConfig(cfg)
	r.queue = world.FIFOQueue(t, cfg)
	sim, base := ghessim.Start(t, ghessim.Options{AppID: appID, AppPublicKey: &ghessim.AppKey().PublicKey, Host: r.host})
	sim.AddInstallation(orgInst, "acme", "Organization")
	sim.AddRepo("acme", "app", true)
	r.sim = sim
	keyPEM := ghessim.AppKeyPEM()
	app, err := githubapp.New(githubapp.Config{ServerURL: base, AppID: appID, Timeout: 2 * time.Second},
		func(context.Context) ([]byte, error) { return keyPEM, nil })
	if err != nil {
		t.Fatal(err)
	}
	deployment := world.Name(t, "stack")
	r.rp = &Reaper{
		jobs: r.store, fleet: r.fleet, github: app, deliveries: app,
		params:  SSMParams{api: r.ssm, deployment: deployment},
		requeue: queue.NewPublisher(r.sqs, r.queue),
		cfg: Settings{Deployment: deployment, StuckAfter: 10 * time.Minute, Grace: 10 * time.Minute, OrphanAfter: 10 * time.Minute,
			RegistrationLag: 5 * time.Minute, Margin: 20 * time.Second},
		now: func() time.Time { return r.now },
	}
	return r
}

// tags are an instance's tags as the provisioner writes them, for job id of deployment dep.
func (r *rig) tags(id int64, dep string) map[string]string {
	return map[string]string{
		fleet.ManagedTag: "true", fleet.DeploymentTag: dep, "spotrunner:preset": "linux-x64",
		"spotrunner:host": r.host, "spotrunner:job": r.host + "/" + strconv.FormatInt(id, 10), "spotrunner:attempt": "0",
	}
}

// instance launches a real instance in moto with tags (nil: none of ours) and returns its id.
func (r *rig) instance(tags map[string]string) string {
	r.t.Helper()
	r.seq++
	inst, err := r.fleet.Launch(context.Background(), fleet.Request{
		ClientToken:      "reaper-test-" + strconv.FormatInt(time.Now().UnixNano(), 10) + "-" + strconv.FormatInt(r.seq, 10),
		LaunchTemplateID: r.world.LaunchTemplateID, ImageID: r.world.Images["x86_64"], InstanceTypes: []string{"m5.large"},
		SubnetIDs: r.world.SubnetIDs, Strategy: fleet.OnDemandOnly, Tags: tags,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if tags == nil || tags[fleet.ManagedTag] != "true" {
		// fleet.Launch always adds the managed tag; strip it for an instance that is not ours.
		if _, err := r.ec2raw.DeleteTags(context.Background(), &ec2.DeleteTagsInput{Resources: []string{inst.ID},
			Tags: []ec2types.Tag{{Key: aws.String(fleet.ManagedTag)}}}); err != nil {
			r.t.Fatal(err)
		}
	}
	return inst.ID
}

// launched records job id launched on a new instance of this deployment, as the provisioner
// leaves it: job launched, runner idle holding a slot, registered on GitHub (a JIT runner), its
// config kept in r.jitConfigs for a test that boots it. It returns the job and the instance id.
func (r *rig) launched(id int64) (state.Job, string) {
	r.t.Helper()
	iid := r.instance(r.tags(id, r.rp.cfg.Deployment))
	return r.launchedOn(id, iid, true), iid
}

// launchedOn is launched with the instance given (which EC2 may not know): job id launched, its
// runner idle holding a slot. registered says whether the runner was registered on GitHub and its
// id recorded; false is a launch whose registration never happened (the instance died first).
func (r *rig) launchedOn(id int64, iid string, registered bool) state.Job {
	r.t.Helper()
	ctx := context.Background()
	labels := []string{"self-hosted", "spotrunner/linux-x64"}
	j := state.Job{Host: r.host, ID: id, Owner: "acme", OwnerType: "Organization", Repo: "app", InstallationID: orgInst,
		RunID: 1, RunAttempt: 1, Labels: labels, LabelSet: labels, ReceivedAt: r.now}
	if _, _, err := r.store.CreateJob(ctx, j, state.Queued); err != nil {
		r.t.Fatal(err)
	}
	r.sim.AddJob(ghessim.Job{ID: id, RunID: 1, RunAttempt: 1, Owner: "acme", Repo: "app", Labels: labels})
	j, err := r.store.Claim(ctx, r.host, id, time.Minute)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.store.AcquireSlot(ctx, r.host, id, "linux-x64", 0, 0, state.LaunchSpec{ImageID: r.world.Images["x86_64"], TimeoutMinutes: 60}); err != nil {
		r.t.Fatal(err)
	}
	j.SlotHeld, j.Preset = true, "linux-x64"
	if _, err = r.store.RecordLaunch(ctx, j, state.Runner{InstanceID: iid, Host: r.host, JobID: id, Owner: "acme",
		InstallationID: orgInst, Preset: "linux-x64", Labels: labels, LabelSet: labels, RunnerName: "spotrunner-" + iid,
		CapacityType: "on-demand", InstanceType: "m5.large", LaunchedAt: r.now, Deadline: r.now.Add(time.Hour)}, time.Minute); err != nil {
		r.t.Fatal(err)
	}
	if registered {
		cfg, err := r.rp.github.(*githubapp.App).GenerateJITConfig(ctx, githubapp.Target{InstallationID: orgInst, Owner: "acme"}, "spotrunner-"+iid, labels, 1)
		if err != nil {
			r.t.Fatal(err)
		}
		if _, err := r.store.UpdateRunner(ctx, iid, []state.RunnerState{state.Idle}, state.Idle, state.RunnerChange{RunnerID: cfg.RunnerID}); err != nil {
			r.t.Fatal(err)
		}
		r.jitConfigs[iid] = cfg.Encoded
	}
	j, err = r.store.Transition(ctx, r.host, id, []state.JobState{state.Provisioning}, state.Launched, state.Change{RunnerName: "spotrunner-" + iid})
	if err != nil {
		r.t.Fatal(err)
	}
	return j
}

// live returns the ids of the live instances of this rig's host.
func (r *rig) live() map[string]bool {
	r.t.Helper()
	found, err := r.fleet.Find(context.Background(), map[string]string{"spotrunner:host": r.host})
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, i := range found {
		out[i.ID] = true
	}
	return out
}

func (r *rig) run() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := r.rp.Run(ctx); err != nil {
		r.t.Fatal(err)
	}
}
