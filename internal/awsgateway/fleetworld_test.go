package awsgateway

import (
	"context"
	"crypto/rand"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/ec2world"
	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/fleet"
)

// fleetRequest is one instant fleet for one instance of the world's template, a pool per subnet
// with the override o, tagged job=job: the shape libs/fleet sends.
func fleetRequest(w ec2world.World, capacity types.DefaultTargetCapacityType, token, job string, o types.FleetLaunchTemplateOverridesRequest) *ec2.CreateFleetInput {
	var pools []types.FleetLaunchTemplateOverridesRequest
	for _, sn := range w.SubnetIDs {
		o.SubnetId = aws.String(sn)
		pools = append(pools, o)
	}
	return &ec2.CreateFleetInput{
		Type:        types.FleetTypeInstant,
		ClientToken: aws.String(token),
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{
			TotalTargetCapacity: aws.Int32(1), DefaultTargetCapacityType: capacity,
		},
		LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{LaunchTemplateId: aws.String(w.LaunchTemplateID), Version: aws.String("$Default")},
			Overrides:                   pools,
		}},
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("job"), Value: aws.String(job)}}}},
	}
}

// typed is a pool of one instance type from image.
func typed(image, instanceType string) types.FleetLaunchTemplateOverridesRequest {
	return types.FleetLaunchTemplateOverridesRequest{InstanceType: types.InstanceType(instanceType), ImageId: aws.String(image)}
}

// requirements is a pool chosen by attributes, as libs/fleet writes one for a cpu=/ram= label.
func requirements(image string, cpu, gib int32, cpus ...types.CpuManufacturer) types.FleetLaunchTemplateOverridesRequest {
	return types.FleetLaunchTemplateOverridesRequest{
		ImageId: aws.String(image),
		InstanceRequirements: &types.InstanceRequirementsRequest{
			VCpuCount:        &types.VCpuCountRangeRequest{Min: aws.Int32(cpu)},
			MemoryMiB:        &types.MemoryMiBRequest{Min: aws.Int32(gib * 1024)},
			CpuManufacturers: cpus,
		},
	}
}

// motoInstances returns the instances moto has tagged job=job, in any state, as id -> type.
func motoInstances(t *testing.T, moto *ec2.Client, job string) map[string]string {
	t.Helper()
	out, err := moto.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("tag:job"), Values: []string{job}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			got[aws.ToString(i.InstanceId)] = string(i.InstanceType)
		}
	}
	return got
}

// launchedTypes is the fleet's answer as id -> instance type.
func launchedTypes(out *ec2.CreateFleetOutput) map[string]string {
	got := map[string]string{}
	for _, fi := range out.Instances {
		for _, id := range fi.InstanceIds {
			got[id] = string(fi.InstanceType)
		}
	}
	return got
}

// fleetErrors is the fleet's Errors as "code: message" lines.
func fleetErrors(out *ec2.CreateFleetOutput) []string {
	var got []string
	for _, e := range out.Errors {
		got = append(got, aws.ToString(e.ErrorCode)+": "+aws.ToString(e.ErrorMessage))
	}
	return got
}

// httpStatus is the HTTP status of the answer an SDK output was decoded from.
func httpStatus(t *testing.T, md middleware.Metadata) int {
	t.Helper()
	resp, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response)
	if !ok {
		t.Fatal("no raw HTTP response in the output's metadata")
	}
	return resp.StatusCode
}

// TestWorldCreateFleet (local world): fixtures are an ec2world.Setup world in moto (VPC, two
// subnets, the template, moto's x86_64 and arm64 AMIs), a fresh copy of the x86_64 AMI that is
// deregistered, and a gateway per case, called by the real SDK EC2 client. Through the gateway:
// an instant fleet launches its instance in moto; one ClientToken sent twice launches one
// instance and answers the same fleet; a changed request under that token is refused with
// IdempotentParameterMismatch; InstanceRequirements launch the smallest type that meets them on
// the AMI's architecture (moto alone answers HTTP 500); an injected fleet error and a
// deregistered AMI come back in Errors of an HTTP 200 answer with nothing launched; and
// libs/fleet's SpotPreferred launch reads an injected spot shortage and falls back to on-demand.
func TestWorldCreateFleet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	moto := ec2world.Client(t)
	w := ec2world.Setup(t, moto)
	x86, arm := w.Images["x86_64"], w.Images["arm64"]
	gone := ec2world.CopyImage(t, moto, x86)
	if _, err := moto.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(gone)}); err != nil {
		t.Fatal(err)
	}
	spot, onDemand := types.DefaultTargetCapacityTypeSpot, types.DefaultTargetCapacityTypeOnDemand

	t.Run("launches in moto", func(t *testing.T) {
		t.Parallel()
		_, cfg := startWorld(t, Options{})
		job := world.Name(t, "job")
		out, err := ec2.NewFromConfig(cfg).CreateFleet(ctx, fleetRequest(w, spot, rand.Text(), job, typed(x86, "m5.large")))
		if err != nil {
			t.Fatal(err)
		}
		got := launchedTypes(out)
		if len(got) != 1 || len(out.Errors) != 0 {
			t.Fatalf("fleet answer: instances %v, errors %v; want one instance and no error", got, fleetErrors(out))
		}
		if diff := cmp.Diff(got, motoInstances(t, moto, job)); diff != "" {
			t.Errorf("instances in moto (-answered +moto):\n%s", diff)
		}
		if !cmp.Equal(got, map[string]string{keyOf(got): "m5.large"}) {
			t.Errorf("launched %v, want one m5.large", got)
		}
	})

	t.Run("one token twice, then changed", func(t *testing.T) {
		t.Parallel()
		_, cfg := startWorld(t, Options{})
		client := ec2.NewFromConfig(cfg)
		job, token := world.Name(t, "job"), rand.Text()
		in := fleetRequest(w, spot, token, job, typed(x86, "m5.large"))
		first, err := client.CreateFleet(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		second, err := client.CreateFleet(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		first.ResultMetadata, second.ResultMetadata = middleware.Metadata{}, middleware.Metadata{}
		if diff := cmp.Diff(asJSON(t, first), asJSON(t, second)); diff != "" {
			t.Errorf("second answer for the token (-first +second):\n%s", diff)
		}
		if got := motoInstances(t, moto, job); len(got) != 1 {
			t.Errorf("moto has %d instances for one token sent twice, want 1: %v", len(got), got)
		}

		changed := fleetRequest(w, spot, token, job, typed(x86, "m5.xlarge"))
		_, err = client.CreateFleet(ctx, changed)
		checkAPIError(t, err, http.StatusBadRequest, "IdempotentParameterMismatch", `The client token "`+token+`" was used before with different parameters.`)
		if got := motoInstances(t, moto, job); len(got) != 1 {
			t.Errorf("moto has %d instances after the changed request, want still 1: %v", len(got), got)
		}
	})

	for _, tt := range []struct {
		name string
		pool types.FleetLaunchTemplateOverridesRequest
		want string
	}{
		{name: "requirements cpu=4 ram=16 x86_64", pool: requirements(x86, 4, 16, types.CpuManufacturerIntel, types.CpuManufacturerAmd), want: "m5.xlarge"},
		{name: "requirements cpu=2 ram=8 arm64", pool: requirements(arm, 2, 8, types.CpuManufacturerAmazonWebServices), want: "m6g.large"},
		{name: "requirements cpu=8 ram=64 from the AMI alone", pool: requirements(x86, 8, 64), want: "r5.2xlarge"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, cfg := startWorld(t, Options{})
			job := world.Name(t, "job")
			out, err := ec2.NewFromConfig(cfg).CreateFleet(ctx, fleetRequest(w, onDemand, rand.Text(), job, tt.pool))
			if err != nil {
				t.Fatal(err)
			}
			got := launchedTypes(out)
			if want := map[string]string{keyOf(got): tt.want}; !cmp.Equal(want, got) {
				t.Errorf("launched %v (errors %v), want one %s", got, fleetErrors(out), tt.want)
			}
			if diff := cmp.Diff(got, motoInstances(t, moto, job)); diff != "" {
				t.Errorf("instances in moto (-answered +moto):\n%s", diff)
			}
		})
	}

	for _, tt := range []struct {
		name     string
		capacity types.DefaultTargetCapacityType
		inject   bool // FailFleet(1, "spot", ...) first
		pool     types.FleetLaunchTemplateOverridesRequest
		want     string
	}{
		{name: "injected spot shortage", capacity: spot, inject: true, pool: typed(x86, "m5.large"),
			want: "InsufficientInstanceCapacity: There is no Spot capacity available that matches your request."},
		{name: "deregistered AMI, spot", capacity: spot, pool: typed(gone, "m5.large"),
			want: "InvalidAMIID.NotFound: The image id '[" + gone + "]' does not exist"},
		{name: "deregistered AMI, on-demand", capacity: onDemand, pool: typed(gone, "m5.large"),
			want: "InvalidAMIID.NotFound: The image id '[" + gone + "]' does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, cfg := startWorld(t, Options{})
			if tt.inject {
				g.FailFleet(1, "spot", "InsufficientInstanceCapacity", "There is no Spot capacity available that matches your request.")
			}
			job := world.Name(t, "job")
			out, err := ec2.NewFromConfig(cfg).CreateFleet(ctx, fleetRequest(w, tt.capacity, rand.Text(), job, tt.pool))
			if err != nil {
				t.Fatal(err)
			}
			if status := httpStatus(t, out.ResultMetadata); status != http.StatusOK {
				t.Errorf("HTTP %d, want 200: an instant fleet reports its failures in Errors", status)
			}
			if diff := cmp.Diff([]string{tt.want, tt.want}, fleetErrors(out)); diff != "" || len(out.Instances) != 0 || out.FleetId == nil {
				t.Errorf("fleet %v: instances %v, errors (-want +got), one per pool:\n%s", aws.ToString(out.FleetId), out.Instances, diff)
			}
			for _, e := range out.Errors {
				if e.Lifecycle != types.InstanceLifecycle(tt.capacity) || e.LaunchTemplateAndOverrides == nil {
					t.Errorf("error %s: lifecycle %q, pool %+v; want %q and the pool", aws.ToString(e.ErrorCode), e.Lifecycle, e.LaunchTemplateAndOverrides, tt.capacity)
				}
			}
			if got := motoInstances(t, moto, job); len(got) != 0 {
				t.Errorf("moto launched %v", got)
			}
		})
	}

	t.Run("libs/fleet falls back to on-demand", func(t *testing.T) {
		t.Parallel()
		g, cfg := startWorld(t, Options{})
		g.FailFleet(1, "spot", "InsufficientInstanceCapacity", "There is no Spot capacity available that matches your request.")
		job := world.Name(t, "job")
		inst, err := fleet.New(ec2.NewFromConfig(cfg)).Launch(ctx, fleet.Request{
			ClientToken: rand.Text(), LaunchTemplateID: w.LaunchTemplateID, ImageID: x86,
			InstanceTypes: []string{"m5.large"}, SubnetIDs: w.SubnetIDs, Strategy: fleet.SpotPreferred, DiskSizeGB: 40,
			Tags: map[string]string{"job": job},
		})
		if err != nil {
			t.Fatal(err)
		}
		if inst.CapacityType != fleet.OnDemand {
			t.Errorf("launched %+v, want the on-demand fallback", inst)
		}
		if diff := cmp.Diff(map[string]string{inst.ID: "m5.large"}, motoInstances(t, moto, job)); diff != "" {
			t.Errorf("instances in moto (-want +got):\n%s", diff)
		}
	})
}

// keyOf is the only key of m, "" when it has another number of keys.
func keyOf(m map[string]string) string {
	if len(m) != 1 {
		return ""
	}
	for k := range m {
		return k
	}
	return ""
}
