package fleet_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
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
// give a spot m5.large whose tags (with the managed marker) EC2 shows; the same token again must
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

// TestWorldStrategies (local world): fixtures are the world, one launch per case and the faults
// each case injects. spotPreferred without spot capacity must launch on-demand (two CreateFleet
// calls) and Find must report it on-demand; spotOnly and onDemandOnly without capacity must be
// ErrCapacity, and a retry with the same token must stay ErrCapacity (AWS replays the token's
// first answer) while a new token launches; throttling must be ErrThrottled; requirements must
// launch the smallest type of the AMI's architecture.
func TestWorldStrategies(t *testing.T) {
	t.Parallel()
	client := ec2world.Client(t)
	w := ec2world.Setup(t, client)
	tests := []struct {
		name      string
		strategy  fleet.Strategy
		change    func(*fleet.Request)
		faults    func(*ec2world.EC2)
		wantKind  error
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
