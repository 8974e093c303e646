package fleet_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/ec2world"
	"github.com/spotrunner/spotrunner/libs/fleet"
)

// Tests in this file need the local world: moto behind internal/ec2world.

var _ fleet.EC2 = (*ec2world.EC2)(nil)

// worldRequest is a launch of one m5.large in the world for a job no other test uses.
func worldRequest(w ec2world.World, s fleet.Strategy) fleet.Request {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	return fleet.Request{
		ClientToken:      "job-" + id + "-a1",
		LaunchTemplateID: w.LaunchTemplateID,
		ImageID:          w.Images["x86_64"],
		InstanceTypes:    []string{"m5.large", "m6i.large"},
		SubnetIDs:        w.SubnetIDs,
		Strategy:         s,
		DiskSizeGB:       40,
		Tags:             map[string]string{"spotrunner:job": "ghes.example.com/" + id, "spotrunner:preset": "linux-x64"},
	}
}

// TestWorldLaunchFindTerminate (local world): fixtures are the world's template and subnets, one
// spotOnly request, and an instance started with RunInstances without our tags. The launch must
// give a spot m5.large whose tags (with the managed marker) EC2 shows, on the instance and on its
// one fleet (the stack's IAM policy allows CreateFleet only with them); the same token again must
// give the same instance, so Find still finds exactly one; Terminate must terminate it (Find then
// finds none) and refuse the untagged instance, which keeps running.
func TestWorldLaunchFindTerminate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := ec2world.Client(t)
	w := ec2world.Setup(t, client)
	api := ec2world.New(client)
	c := fleet.New(api)
	r := worldRequest(w, fleet.SpotOnly)

	inst, err := c.Launch(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if inst.CapacityType != fleet.Spot || inst.InstanceType != "m5.large" || !slices.Contains(w.SubnetIDs, inst.SubnetID) {
		t.Errorf("Launch() = %+v, want a spot m5.large in a world subnet", inst)
	}
	again, err := c.Launch(ctx, r)
	if err != nil || again.ID != inst.ID {
		t.Errorf("Launch() with the same token = %+v, %v; want %s again", again, err, inst.ID)
	}

	out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{inst.ID}})
	if err != nil {
		t.Fatal(err)
	}
	onEC2 := map[string]string{}
	for _, tag := range out.Reservations[0].Instances[0].Tags {
		onEC2[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	wantTags := map[string]string{fleet.ManagedTag: "true", "spotrunner:job": r.Tags["spotrunner:job"], "spotrunner:preset": "linux-x64"}
	if diff := cmp.Diff(wantTags, onEC2); diff != "" {
		t.Errorf("tags on the instance (-want +got):\n%s", diff)
	}

	fleets, err := client.DescribeFleets(ctx, &ec2.DescribeFleetsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var tagged []string // our fleets: tagged with the job and the managed marker
	for _, f := range fleets.Fleets {
		onFleet := map[string]string{}
		for _, tag := range f.Tags {
			onFleet[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
		}
		if onFleet["spotrunner:job"] == r.Tags["spotrunner:job"] && onFleet[fleet.ManagedTag] == "true" {
			tagged = append(tagged, aws.ToString(f.FleetId))
		}
	}
	if len(tagged) != 1 {
		t.Errorf("fleets tagged with the job and %s=true: %v, want one", fleet.ManagedTag, tagged)
	}

	found, err := c.Find(ctx, map[string]string{"spotrunner:job": r.Tags["spotrunner:job"]})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].ID != inst.ID || found[0].CapacityType != fleet.Spot || found[0].State != "running" || found[0].LaunchedAt.IsZero() {
		t.Errorf("Find() = %+v, want %s, spot, running, with its launch time", found, inst.ID)
	}

	run, err := client.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(w.Images["x86_64"]), InstanceType: types.InstanceTypeM5Large, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SubnetId: aws.String(w.SubnetIDs[0]),
	})
	if err != nil {
		t.Fatal(err)
	}
	stranger := aws.ToString(run.Instances[0].InstanceId)
	err = c.Terminate(ctx, inst.ID, stranger)
	if !errors.Is(err, fleet.ErrNotOurs) {
		t.Errorf("Terminate(ours, stranger) = %v, want ErrNotOurs", err)
	}
	states := map[string]types.InstanceStateName{}
	out, err = client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{inst.ID, stranger}})
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range out.Reservations {
		for _, i := range res.Instances {
			states[aws.ToString(i.InstanceId)] = i.State.Name
		}
	}
	want := map[string]types.InstanceStateName{inst.ID: types.InstanceStateNameTerminated, stranger: types.InstanceStateNameRunning}
	if diff := cmp.Diff(want, states); diff != "" {
		t.Errorf("states after Terminate (-want +got):\n%s", diff)
	}
	if found, err := c.Find(ctx, map[string]string{"spotrunner:job": r.Tags["spotrunner:job"]}); err != nil || len(found) != 0 {
		t.Errorf("Find() after Terminate = %+v, %v; want none", found, err)
	}
	if err := c.Terminate(ctx, inst.ID); err != nil {
		t.Errorf("Terminate() of a terminated instance = %v, want nil", err)
	}
}

// deniedMessage is AWS's message in a fleet's Errors for a pool the caller may not launch.
const deniedMessage = "You are not authorized to perform this operation. Encoded authorization failure message: " +
	"EXAMPLEiWc3_qJ9vjnkn0s1Yj6nYt8qYQ"

// TestWorldStrategies (local world): fixtures are the world, one launch per case and the faults
// each case injects. spotPreferred without spot capacity must launch on-demand (two CreateFleet
// calls) and Find must report it on-demand; spotOnly and onDemandOnly without capacity must be
// ErrCapacity, and a retry with the same token must stay ErrCapacity (AWS replays the token's
// first answer) while a new token launches; throttling must be ErrThrottled; a denial (in the
// fleet's Errors or as CreateFleet's API error) must be ErrUnauthorized, never ErrCapacity, name
// the missing permission, and in spotPreferred make no on-demand call; an AMI that is gone (in the
// fleet's Errors, as CreateFleet's API error, or a copy of the world's AMI deregistered in moto)
// must be ErrImageGone, never ErrLaunchConfig, name the AMI, and in spotPreferred make no
// on-demand call; requirements must launch the smallest type of the AMI's architecture.
func TestWorldStrategies(t *testing.T) {
	t.Parallel()
	client := ec2world.Client(t)
	w := ec2world.Setup(t, client)
	gone := ec2world.CopyImage(t, client, w.Images["x86_64"])
	if _, err := client.DeregisterImage(context.Background(), &ec2.DeregisterImageInput{ImageId: aws.String(gone)}); err != nil {
		t.Fatal(err)
	}
	goneMessage := "The image id '[" + w.Images["x86_64"] + "]' does not exist"
	tests := []struct {
		name      string
		strategy  fleet.Strategy
		change    func(*fleet.Request)
		faults    func(*ec2world.EC2)
		wantKind  error
		wantText  string // in the error
		wantCap   string
		wantType  string
		wantCalls int // CreateFleet calls
	}{
		{
			name: "spotPreferred falls back to on-demand", strategy: fleet.SpotPreferred,
			faults: func(e *ec2world.EC2) {
				e.FailFleet(1, "spot", "InsufficientInstanceCapacity", "There is no Spot capacity available that matches your request.")
			},
			wantCap: fleet.OnDemand, wantType: "m5.large", wantCalls: 2,
		},
		{
			name: "spotPreferred launches spot", strategy: fleet.SpotPreferred,
			wantCap: fleet.Spot, wantType: "m5.large", wantCalls: 1,
		},
		{
			name: "spotOnly without capacity", strategy: fleet.SpotOnly,
			faults: func(e *ec2world.EC2) {
				e.FailFleet(1, "spot", "InsufficientInstanceCapacity", "There is no Spot capacity available that matches your request.")
			},
			wantKind: fleet.ErrCapacity, wantCalls: 1,
		},
		{
			name: "onDemandOnly without capacity", strategy: fleet.OnDemandOnly,
			faults: func(e *ec2world.EC2) {
				e.FailFleet(1, "on-demand", "InsufficientInstanceCapacity", "We currently do not have sufficient m5.large capacity.")
			},
			wantKind: fleet.ErrCapacity, wantCalls: 1,
		},
		{
			name: "onDemandOnly throttled", strategy: fleet.OnDemandOnly,
			faults: func(e *ec2world.EC2) {
				e.FailCall(ec2world.CreateFleet, 1, ec2world.APIError("RequestLimitExceeded", "Request limit exceeded."))
			},
			wantKind: fleet.ErrThrottled, wantCalls: 1,
		},
		{
			name: "spotPreferred with spot denied does not fall back", strategy: fleet.SpotPreferred,
			faults: func(e *ec2world.EC2) {
				e.FailFleet(1, "spot", "UnauthorizedOperation", deniedMessage)
			},
			wantKind: fleet.ErrUnauthorized, wantText: "spot-instances-request/*", wantCalls: 1,
		},
		{
			name: "spotOnly with spot denied", strategy: fleet.SpotOnly,
			faults: func(e *ec2world.EC2) {
				e.FailFleet(1, "spot", "UnauthorizedOperation", deniedMessage)
			},
			wantKind: fleet.ErrUnauthorized, wantText: "spot-instances-request/*", wantCalls: 1,
		},
		{
			name: "onDemandOnly denied", strategy: fleet.OnDemandOnly,
			faults: func(e *ec2world.EC2) {
				e.FailFleet(1, "on-demand", "UnauthorizedOperation", deniedMessage)
			},
			wantKind: fleet.ErrUnauthorized, wantText: "iam:PassRole", wantCalls: 1,
		},
		{
			name: "CreateFleet denied as an API error", strategy: fleet.SpotPreferred,
			faults: func(e *ec2world.EC2) {
				e.FailCall(ec2world.CreateFleet, 1, ec2world.APIError("UnauthorizedOperation", deniedMessage))
			},
			wantKind: fleet.ErrUnauthorized, wantText: "ec2:CreateFleet", wantCalls: 1,
		},
		{
			name: "spotPreferred with the AMI gone in the fleet's Errors does not fall back", strategy: fleet.SpotPreferred,
			faults: func(e *ec2world.EC2) {
				e.FailFleet(1, "", "InvalidAMIID.NotFound", goneMessage)
			},
			wantKind: fleet.ErrImageGone, wantText: w.Images["x86_64"], wantCalls: 1,
		},
		{
			name: "onDemandOnly with the AMI gone as an API error", strategy: fleet.OnDemandOnly,
			faults: func(e *ec2world.EC2) {
				e.FailCall(ec2world.CreateFleet, 1, ec2world.APIError("InvalidAMIID.NotFound", goneMessage))
			},
			wantKind: fleet.ErrImageGone, wantText: w.Images["x86_64"], wantCalls: 1,
		},
		{
			name: "spotPreferred from an AMI deregistered in moto", strategy: fleet.SpotPreferred,
			change:   func(r *fleet.Request) { r.ImageID = gone },
			wantKind: fleet.ErrImageGone, wantText: gone, wantCalls: 1,
		},
		{
			name: "requirements on arm64", strategy: fleet.SpotOnly,
			change: func(r *fleet.Request) {
				r.ImageID = w.Images["arm64"]
				r.Requirements = &fleet.Requirements{MinVCPU: 4, MinMemoryGiB: 16, Architecture: fleet.ARM64}
			},
			wantCap: fleet.Spot, wantType: "m6g.xlarge", wantCalls: 1,
		},
		{
			name: "requirements on x86_64", strategy: fleet.OnDemandOnly,
			change: func(r *fleet.Request) {
				r.Requirements = &fleet.Requirements{MinVCPU: 4, MinMemoryGiB: 16, Architecture: fleet.X86_64}
			},
			wantCap: fleet.OnDemand, wantType: "m5.xlarge", wantCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			api := ec2world.New(client)
			if tt.faults != nil {
				tt.faults(api)
			}
			c := fleet.New(api)
			r := worldRequest(w, tt.strategy)
			if tt.change != nil {
				tt.change(&r)
			}
			inst, err := c.Launch(ctx, r)
			if got := countOf(api.Calls(), ec2world.CreateFleet); got != tt.wantCalls {
				t.Errorf("%d CreateFleet calls, want %d", got, tt.wantCalls)
			}
			if tt.wantKind != nil {
				if !errors.Is(err, tt.wantKind) {
					t.Fatalf("Launch() = %+v, %v; want %v", inst, err, tt.wantKind)
				}
				if tt.wantKind != fleet.ErrCapacity && errors.Is(err, fleet.ErrCapacity) {
					t.Errorf("Launch() = %v, want no ErrCapacity", err)
				}
				if tt.wantKind == fleet.ErrImageGone && errors.Is(err, fleet.ErrLaunchConfig) {
					t.Errorf("Launch() = %v, want no ErrLaunchConfig for a gone AMI", err)
				}
				if !strings.Contains(err.Error(), tt.wantText) {
					t.Errorf("Launch() = %v, want it to name %q", err, tt.wantText)
				}
				if errors.Is(err, fleet.ErrCapacity) {
					if _, err := c.Launch(ctx, r); !errors.Is(err, fleet.ErrCapacity) {
						t.Errorf("retry with the same token = %v, want ErrCapacity replayed", err)
					}
					r.ClientToken += "-2"
					if _, err := c.Launch(ctx, r); err != nil {
						t.Errorf("retry with a new token = %v, want a launch", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if inst.CapacityType != tt.wantCap || inst.InstanceType != tt.wantType {
				t.Errorf("Launch() = %+v, want %s %s", inst, tt.wantCap, tt.wantType)
			}
			found, err := c.Find(ctx, map[string]string{"spotrunner:job": r.Tags["spotrunner:job"]})
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != 1 || found[0].ID != inst.ID || found[0].CapacityType != tt.wantCap || found[0].InstanceType != tt.wantType {
				t.Errorf("Find() = %+v, want %s as %s %s", found, inst.ID, tt.wantCap, tt.wantType)
			}
		})
	}
}

// TestWorldTokenReused (local world): fixtures are the world and one onDemandOnly request. The
// request launches; the same token with another instance type must be ErrTokenReused, not
// ErrLaunchConfig, and launch nothing more; the first request again must give its instance back.
func TestWorldTokenReused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := ec2world.Client(t)
	w := ec2world.Setup(t, client)
	c := fleet.New(ec2world.New(client))
	r := worldRequest(w, fleet.OnDemandOnly)
	first, err := c.Launch(ctx, r)
	if err != nil {
		t.Fatal(err)
	}

	changed := r
	changed.InstanceTypes = []string{"m6i.large"}
	_, err = c.Launch(ctx, changed)
	if !errors.Is(err, fleet.ErrTokenReused) || errors.Is(err, fleet.ErrLaunchConfig) {
		t.Errorf("Launch() with a reused token and another request = %v, want ErrTokenReused and not ErrLaunchConfig", err)
	}
	again, err := c.Launch(ctx, r)
	if err != nil || again.ID != first.ID {
		t.Errorf("Launch() of the first request again = %+v, %v; want %s", again, err, first.ID)
	}
	found, err := c.Find(ctx, map[string]string{"spotrunner:job": r.Tags["spotrunner:job"]})
	if err != nil || len(found) != 1 {
		t.Errorf("Find() = %+v, %v; want only %s", found, err, first.ID)
	}
}

// TestWorldLookup (local world): fixtures are the world, one spotOnly launch and an id EC2 never
// issued. Lookup must find the launched instance running with its tags, find it terminated after
// Terminate, and answer found=false without an error for the unknown id.
func TestWorldLookup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := ec2world.Client(t)
	w := ec2world.Setup(t, client)
	c := fleet.New(ec2world.New(client))
	r := worldRequest(w, fleet.SpotOnly)
	inst, err := c.Launch(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		Found          bool
		State, Cap, ID string
		Job            string
	}
	lookup := func(id string) result {
		t.Helper()
		got, found, err := c.Lookup(ctx, id)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", id, err)
		}
		return result{Found: found, State: got.State, Cap: got.CapacityType, ID: got.ID, Job: got.Tags["spotrunner:job"]}
	}
	live := lookup(inst.ID)
	if err := c.Terminate(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  result
		want result
	}{
		{"live", live, result{Found: true, State: "running", Cap: fleet.Spot, ID: inst.ID, Job: r.Tags["spotrunner:job"]}},
		{"terminated", lookup(inst.ID), result{Found: true, State: "terminated", Cap: fleet.Spot, ID: inst.ID, Job: r.Tags["spotrunner:job"]}},
		{"unknown", lookup("i-00000000000000000"), result{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("Lookup (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWorldFindThrottled (local world): fixtures are one throttling fault on DescribeInstances.
// Find must fail with ErrThrottled.
func TestWorldFindThrottled(t *testing.T) {
	t.Parallel()
	api := ec2world.New(ec2world.Client(t))
	api.FailCall(ec2world.DescribeInstances, 1, ec2world.APIError("RequestLimitExceeded", "Request limit exceeded."))
	_, err := fleet.New(api).Find(context.Background(), map[string]string{"spotrunner:job": "ghes.example.com/none"})
	if !errors.Is(err, fleet.ErrThrottled) {
		t.Errorf("Find() = %v, want ErrThrottled", err)
	}
}

func countOf(calls []string, op string) int {
	n := 0
	for _, c := range calls {
		if c == op {
			n++
		}
	}
	return n
}
