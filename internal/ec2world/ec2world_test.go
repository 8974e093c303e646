package ec2world_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/ec2world"
)

// unique returns a value no other test (or test run against the same moto) uses.
func unique(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// fleetRequest is one instant fleet for one instance of the world's template, tagged with job.
func fleetRequest(w ec2world.World, capacity types.DefaultTargetCapacityType, token, job string, o types.FleetLaunchTemplateOverridesRequest) *ec2.CreateFleetInput {
	var overrides []types.FleetLaunchTemplateOverridesRequest
	for _, sn := range w.SubnetIDs {
		o.SubnetId = aws.String(sn)
		overrides = append(overrides, o)
	}
	return &ec2.CreateFleetInput{
		Type:        types.FleetTypeInstant,
		ClientToken: aws.String(token),
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{
			TotalTargetCapacity: aws.Int32(1), DefaultTargetCapacityType: capacity,
		},
		LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{LaunchTemplateId: aws.String(w.LaunchTemplateID), Version: aws.String("$Default")},
			Overrides:                   overrides,
		}},
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("job"), Value: aws.String(job)}}}},
	}
}

func typed(w ec2world.World, instanceType string) types.FleetLaunchTemplateOverridesRequest {
	return types.FleetLaunchTemplateOverridesRequest{InstanceType: types.InstanceType(instanceType), ImageId: aws.String(w.Images["x86_64"])}
}

func requirements(image string, cpu, gib int32) types.FleetLaunchTemplateOverridesRequest {
	return types.FleetLaunchTemplateOverridesRequest{
		ImageId: aws.String(image),
		InstanceRequirements: &types.InstanceRequirementsRequest{
			VCpuCount: &types.VCpuCountRangeRequest{Min: aws.Int32(cpu)},
			MemoryMiB: &types.MemoryMiBRequest{Min: aws.Int32(gib * 1024)},
		},
	}
}

// instancesOf returns the ids of the instances tagged job=job, in any state.
func instancesOf(t *testing.T, client *ec2.Client, job string) []string {
	t.Helper()
	out, err := client.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("tag:job"), Values: []string{job}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			ids = append(ids, aws.ToString(i.InstanceId))
		}
	}
	return ids
}

func instanceIDs(out *ec2.CreateFleetOutput) []string {
	var ids []string
	for _, i := range out.Instances {
		ids = append(ids, i.InstanceIds...)
	}
	return ids
}

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// TestMotoGaps (local world): fixtures are moto itself, called without the layer. It must still
// show the three gaps the layer closes: one ClientToken used twice launches two instances, an
// InstanceRequirements override on a template without an instance type fails with HTTP 500, and
// an AMI deregistered a moment ago still launches. When this test fails, moto has caught up and
// the layer's emulation of that behaviour can go.
func TestMotoGaps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := ec2world.Client(t)
	w := ec2world.Setup(t, client)

	job, token := unique("job-"), unique("token-")
	in := fleetRequest(w, types.DefaultTargetCapacityTypeSpot, token, job, typed(w, "m5.large"))
	for range 2 {
		if _, err := client.CreateFleet(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(instancesOf(t, client, job)); got != 2 {
		t.Errorf("moto launched %d instances for one token twice, want 2 (the gap)", got)
	}

	in = fleetRequest(w, types.DefaultTargetCapacityTypeSpot, unique("token-"), unique("job-"), requirements(w.Images["x86_64"], 4, 16))
	_, err := client.CreateFleet(ctx, in, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	var resp *awshttp.ResponseError
	if !errors.As(err, &resp) || resp.HTTPStatusCode() != 500 {
		t.Errorf("moto CreateFleet with InstanceRequirements: err = %v, want HTTP 500 (the gap)", err)
	}

	gone := ec2world.CopyImage(t, client, w.Images["x86_64"])
	if _, err := client.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(gone)}); err != nil {
		t.Fatal(err)
	}
	job = unique("job-")
	o := typed(w, "m5.large")
	o.ImageId = aws.String(gone)
	if _, err := client.CreateFleet(ctx, fleetRequest(w, types.DefaultTargetCapacityTypeOnDemand, unique("token-"), job, o)); err != nil {
		t.Fatal(err)
	}
	if got := len(instancesOf(t, client, job)); got != 1 {
		t.Errorf("moto launched %d instances from a deregistered AMI, want 1 (the gap)", got)
	}
}

// TestDeregisteredImage (local world): fixtures are two fresh copies of the world's x86_64 AMI,
// one of them deregistered. Through the layer, a fleet from the deregistered copy (spot and
// on-demand alike) launches nothing and answers InvalidAMIID.NotFound naming the AMI, once per
// pool, as AWS does; its token replays that answer; a fleet from the live copy still launches.
func TestDeregisteredImage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := ec2world.Client(t)
	w := ec2world.Setup(t, client)
	e := ec2world.New(client)
	live, gone := ec2world.CopyImage(t, client, w.Images["x86_64"]), ec2world.CopyImage(t, client, w.Images["x86_64"])
	if _, err := client.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(gone)}); err != nil {
		t.Fatal(err)
	}
	from := func(image string) types.FleetLaunchTemplateOverridesRequest {
		o := typed(w, "m5.large")
		o.ImageId = aws.String(image)
		return o
	}
	for _, capacity := range []types.DefaultTargetCapacityType{types.DefaultTargetCapacityTypeSpot, types.DefaultTargetCapacityTypeOnDemand} {
		job := unique("job-")
		in := fleetRequest(w, capacity, unique("token-"), job, from(gone))
		out, err := e.CreateFleet(ctx, in)
		if err != nil {
			t.Fatalf("%s fleet from a deregistered AMI: %v", capacity, err)
		}
		var got []string
		for _, fe := range out.Errors {
			got = append(got, aws.ToString(fe.ErrorCode)+": "+aws.ToString(fe.ErrorMessage))
		}
		want := "InvalidAMIID.NotFound: The image id '[" + gone + "]' does not exist"
		if diff := cmp.Diff([]string{want, want}, got); diff != "" || len(out.Instances) != 0 {
			t.Errorf("%s fleet from a deregistered AMI: instances %v, errors (-want +got):\n%s", capacity, out.Instances, diff)
		}
		if replay, err := e.CreateFleet(ctx, in); err != nil || aws.ToString(replay.FleetId) != aws.ToString(out.FleetId) {
			t.Errorf("replayed refusal = %+v, %v; want fleet %s again", replay, err, aws.ToString(out.FleetId))
		}
		if ids := instancesOf(t, client, job); len(ids) != 0 {
			t.Errorf("instances %v launched from a deregistered AMI", ids)
		}
	}
	out, err := e.CreateFleet(ctx, fleetRequest(w, types.DefaultTargetCapacityTypeSpot, unique("token-"), unique("job-"), from(live)))
	if err != nil || len(instanceIDs(out)) != 1 {
		t.Errorf("fleet from the live copy = %+v, %v; want one instance", out, err)
	}
}

// TestClientToken (local world): fixtures are the world's template and one token. Through the
// layer, the token used twice (and five times at once) launches one instance and answers the same
// fleet each time, without a second call to moto; a changed request under the same token is
// IdempotentParameterMismatch; a request that failed with an API error is not remembered.
func TestClientToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := ec2world.Client(t)
	w := ec2world.Setup(t, client)
	e := ec2world.New(client)

	job, token := unique("job-"), unique("token-")
	in := fleetRequest(w, types.DefaultTargetCapacityTypeSpot, token, job, typed(w, "m5.large"))
	first, err := e.CreateFleet(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	answers := make([]*ec2.CreateFleetOutput, 5)
	for i := range answers {
		wg.Go(func() {
			out, err := e.CreateFleet(ctx, in)
			if err != nil {
				t.Error(err)
				return
			}
			answers[i] = out
		})
	}
	wg.Wait()
	for _, out := range answers {
		if out == nil || aws.ToString(out.FleetId) != aws.ToString(first.FleetId) || !cmp.Equal(instanceIDs(out), instanceIDs(first)) {
			t.Errorf("replayed answer %v, want fleet %s with %v", out, aws.ToString(first.FleetId), instanceIDs(first))
		}
	}
	if diff := cmp.Diff(instanceIDs(first), instancesOf(t, client, job)); diff != "" {
		t.Errorf("instances tagged with the job (-want +got):\n%s", diff)
	}

	changed := fleetRequest(w, types.DefaultTargetCapacityTypeOnDemand, token, job, typed(w, "m5.large"))
	if _, err := e.CreateFleet(ctx, changed); errorCode(err) != "IdempotentParameterMismatch" {
		t.Errorf("same token, other request: err = %v, want IdempotentParameterMismatch", err)
	}

	job2, token2 := unique("job-"), unique("token-")
	e.FailCall(ec2world.CreateFleet, 1, ec2world.APIError("RequestLimitExceeded", "Request limit exceeded."))
	in2 := fleetRequest(w, types.DefaultTargetCapacityTypeSpot, token2, job2, typed(w, "m5.large"))
	if _, err := e.CreateFleet(ctx, in2); errorCode(err) != "RequestLimitExceeded" {
		t.Fatalf("injected throttling: err = %v", err)
	}
	out, err := e.CreateFleet(ctx, in2)
	if err != nil || len(instanceIDs(out)) != 1 {
		t.Errorf("retry after throttling = %v, %v; want one instance", out, err)
	}

	want := []string{"CreateFleet", "CreateFleet", "CreateFleet", "CreateFleet", "CreateFleet", "CreateFleet", "CreateFleet", "CreateFleet", "CreateFleet"}
	if diff := cmp.Diff(want, e.Calls()); diff != "" {
		t.Errorf("Calls() (-want +got):\n%s", diff)
	}
}

// TestInstanceRequirements (local world): fixtures are the world's x86_64 and arm64 AMIs, an AMI
// moto does not know, and cpu=4,ram=16 requirements. Each launch must succeed through the layer
// with the smallest fitting type of the AMI's architecture (x86_64 for the unknown AMI), and leave
// the caller's request untouched; requirements nothing fits are a 400, not a 500.
func TestInstanceRequirements(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := ec2world.Client(t)
	w := ec2world.Setup(t, client)
	e := ec2world.New(client)
	tests := []struct {
		name  string
		image string
		want  types.InstanceType
	}{
		{"x86_64 AMI", w.Images["x86_64"], "m5.xlarge"},
		{"arm64 AMI", w.Images["arm64"], "m6g.xlarge"},
		{"unknown AMI", "ami-00000000000000000", "m5.xlarge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := fleetRequest(w, types.DefaultTargetCapacityTypeSpot, unique("token-"), unique("job-"), requirements(tt.image, 4, 16))
			out, err := e.CreateFleet(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Instances) != 1 || out.Instances[0].InstanceType != tt.want {
				t.Errorf("launched %+v, want one %s", out.Instances, tt.want)
			}
			if o := in.LaunchTemplateConfigs[0].Overrides[0]; o.InstanceRequirements == nil || o.InstanceType != "" {
				t.Errorf("the caller's request was rewritten: %+v", o)
			}
		})
	}
	in := fleetRequest(w, types.DefaultTargetCapacityTypeSpot, unique("token-"), unique("job-"), requirements(w.Images["arm64"], 512, 0))
	if _, err := e.CreateFleet(ctx, in); errorCode(err) != "InvalidParameterValue" {
		t.Errorf("unsatisfiable requirements: err = %v, want InvalidParameterValue", err)
	}
}

// TestFailFleet (local world): fixtures are one spot fault and one any-capacity fault. The first
// spot call answers zero instances with the code in one error per pool, and its token replays that
// answer without using up a fault; an on-demand call skips the spot fault but takes the
// any-capacity one; after that, calls launch from moto again.
func TestFailFleet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := ec2world.Client(t)
	w := ec2world.Setup(t, client)
	e := ec2world.New(client)
	e.FailFleet(1, "spot", "InsufficientInstanceCapacity", "There is no Spot capacity available that matches your request.")
	e.FailFleet(1, "", "UnfulfillableCapacity", "Unable to fulfill capacity due to your request configuration.")

	spot := fleetRequest(w, types.DefaultTargetCapacityTypeSpot, unique("token-"), unique("job-"), typed(w, "m5.large"))
	failed, err := e.CreateFleet(ctx, spot)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fe := range failed.Errors {
		got = append(got, string(fe.Lifecycle)+" "+aws.ToString(fe.ErrorCode)+" "+aws.ToString(fe.LaunchTemplateAndOverrides.Overrides.SubnetId))
	}
	want := []string{
		"spot InsufficientInstanceCapacity " + w.SubnetIDs[0],
		"spot InsufficientInstanceCapacity " + w.SubnetIDs[1],
	}
	if diff := cmp.Diff(want, got); diff != "" || len(failed.Instances) != 0 || aws.ToString(failed.FleetId) == "" {
		t.Errorf("failed fleet: instances %v, fleet %q, errors (-want +got):\n%s", failed.Instances, aws.ToString(failed.FleetId), diff)
	}
	replay, err := e.CreateFleet(ctx, spot)
	if err != nil || aws.ToString(replay.FleetId) != aws.ToString(failed.FleetId) || len(replay.Instances) != 0 {
		t.Errorf("replayed failure = %+v, %v; want fleet %s again", replay, err, aws.ToString(failed.FleetId))
	}

	onDemand := fleetRequest(w, types.DefaultTargetCapacityTypeOnDemand, unique("token-"), unique("job-"), typed(w, "m5.large"))
	out, err := e.CreateFleet(ctx, onDemand)
	if err != nil || len(out.Instances) != 0 || len(out.Errors) == 0 || aws.ToString(out.Errors[0].ErrorCode) != "UnfulfillableCapacity" {
		t.Errorf("on-demand with an any-capacity fault = %+v, %v; want UnfulfillableCapacity", out, err)
	}

	for _, capacity := range []types.DefaultTargetCapacityType{types.DefaultTargetCapacityTypeSpot, types.DefaultTargetCapacityTypeOnDemand} {
		out, err := e.CreateFleet(ctx, fleetRequest(w, capacity, unique("token-"), unique("job-"), typed(w, "m5.large")))
		if err != nil || len(out.Instances) != 1 || string(out.Instances[0].Lifecycle) != string(capacity) {
			t.Errorf("%s after the faults = %+v, %v; want one %s instance", capacity, out, err, capacity)
		}
	}
}

// TestFailCall (local world): fixtures are two throttling faults on DescribeInstances. The next two
// calls fail with RequestLimitExceeded wrapped as the SDK wraps it, the third reaches moto, other
// operations are not affected, and Calls lists all of them in order.
func TestFailCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := ec2world.New(ec2world.Client(t))
	e.FailCall(ec2world.DescribeInstances, 2, ec2world.APIError("RequestLimitExceeded", "Request limit exceeded."))
	in := &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:job"), Values: []string{unique("job-")}}}}
	for i := range 2 {
		_, err := e.DescribeInstances(ctx, in)
		var op *smithy.OperationError
		if errorCode(err) != "RequestLimitExceeded" || !errors.As(err, &op) || op.Operation() != "DescribeInstances" {
			t.Errorf("call %d: err = %v, want RequestLimitExceeded from DescribeInstances", i+1, err)
		}
	}
	if _, err := e.DescribeInstances(ctx, in); err != nil {
		t.Errorf("third call: %v", err)
	}
	if _, err := e.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{"i-00000000000000000"}}); errorCode(err) != "InvalidInstanceID.NotFound" {
		t.Errorf("TerminateInstances of an unknown id: err = %v, want moto's InvalidInstanceID.NotFound", err)
	}
	want := []string{"DescribeInstances", "DescribeInstances", "DescribeInstances", "TerminateInstances"}
	if diff := cmp.Diff(want, e.Calls()); diff != "" {
		t.Errorf("Calls() (-want +got):\n%s", diff)
	}
}
