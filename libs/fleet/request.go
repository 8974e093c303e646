package fleet

import (
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// launchTemplateVersion is "$Default", not "$Latest": the stack decides which template version is
// live (CloudFormation makes each version it creates the default), so a version created by hand or
// by a half-finished change never reaches runners. The AMI changes with every weekly rebuild, but
// it is an override, so it needs no new template version.
const launchTemplateVersion = "$Default"

// RootDevice is the root volume's device name on Ubuntu AMIs, the one DiskSizeGB resizes. (On an
// AMI with another root device the mapping would add a second volume instead.)
const RootDevice = "/dev/sda1"

// maxClientToken is EC2's limit on a ClientToken's length.
const maxClientToken = 64

// validate reports a request that EC2 would reject or that could not be what the caller meant.
func (r Request) validate() error {
	token := r.ClientToken
	if r.Strategy == SpotPreferred {
		token += "-spot"
	}
	switch {
	case r.ClientToken == "":
		return fmt.Errorf("no client token: %w", ErrLaunchConfig)
	case len(token) > maxClientToken:
		return fmt.Errorf("client token %q longer than %d characters with its suffix: %w", token, maxClientToken, ErrLaunchConfig)
	case r.LaunchTemplateID == "":
		return fmt.Errorf("no launch template: %w", ErrLaunchConfig)
	case len(r.SubnetIDs) == 0:
		return fmt.Errorf("no subnet: %w", ErrLaunchConfig)
	case r.Requirements == nil && len(r.InstanceTypes) == 0:
		return fmt.Errorf("neither instance types nor requirements: %w", ErrLaunchConfig)
	case r.DiskSizeGB < 0:
		return fmt.Errorf("disk size %d GB: %w", r.DiskSizeGB, ErrLaunchConfig)
	}
	switch r.Strategy {
	case SpotOnly, SpotPreferred, OnDemandOnly:
	default:
		return fmt.Errorf("unknown strategy %q: %w", r.Strategy, ErrLaunchConfig)
	}
	if q := r.Requirements; q != nil {
		if q.MinVCPU < 0 || q.MinMemoryGiB < 0 {
			return fmt.Errorf("negative requirements cpu=%d ram=%d: %w", q.MinVCPU, q.MinMemoryGiB, ErrLaunchConfig)
		}
		if _, ok := cpuManufacturers[q.Architecture]; !ok {
			return fmt.Errorf("requirements without a known architecture (%q): %w", q.Architecture, ErrLaunchConfig)
		}
	}
	return nil
}

// tags returns the request's tags with the managed marker, which no caller can forget or change.
func (r Request) tags() map[string]string {
	tags := make(map[string]string, len(r.Tags)+1)
	maps.Copy(tags, r.Tags)
	tags[ManagedTag] = "true"
	return tags
}

// cpuManufacturers are the manufacturers of each architecture's EC2 instance types (Apple's are
// Mac instances, which need dedicated hosts and are never in a fleet).
var cpuManufacturers = map[string][]types.CpuManufacturer{
	X86_64: {types.CpuManufacturerIntel, types.CpuManufacturerAmd},
	ARM64:  {types.CpuManufacturerAmazonWebServices},
}

// fleetInput is the CreateFleet request for one instance of the given capacity type.
func fleetInput(r Request, capacity types.DefaultTargetCapacityType, token string) *ec2.CreateFleetInput {
	in := &ec2.CreateFleetInput{
		Type:        types.FleetTypeInstant,
		ClientToken: aws.String(token),
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{
			TotalTargetCapacity:       aws.Int32(1),
			DefaultTargetCapacityType: capacity,
		},
		LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{
				LaunchTemplateId: aws.String(r.LaunchTemplateID),
				Version:          aws.String(launchTemplateVersion),
			},
			Overrides: overrides(r),
		}},
		TagSpecifications: tagSpecifications(r.tags()),
	}
	if capacity == types.DefaultTargetCapacityTypeSpot {
		// Price-capacity-optimized: the cheapest of the pools least likely to be interrupted,
		// AWS's recommendation for spot (lowest-price alone maximises interruptions).
		in.SpotOptions = &types.SpotOptionsRequest{AllocationStrategy: types.SpotAllocationStrategyPriceCapacityOptimized}
	} else {
		in.OnDemandOptions = &types.OnDemandOptionsRequest{AllocationStrategy: types.FleetOnDemandAllocationStrategyLowestPrice}
	}
	return in
}

// overrides are the fleet's pools: each instance type (or the one requirements block) × each subnet.
func overrides(r Request) []types.FleetLaunchTemplateOverridesRequest {
	var disk []types.FleetBlockDeviceMappingRequest
	if r.DiskSizeGB > 0 {
		disk = []types.FleetBlockDeviceMappingRequest{{
			DeviceName: aws.String(RootDevice),
			Ebs: &types.FleetEbsBlockDeviceRequest{
				VolumeSize:          aws.Int32(int32(r.DiskSizeGB)),
				VolumeType:          types.VolumeTypeGp3,
				Encrypted:           aws.Bool(true),
				DeleteOnTermination: aws.Bool(true),
			},
		}}
	}
	pool := func(subnet string) types.FleetLaunchTemplateOverridesRequest {
		o := types.FleetLaunchTemplateOverridesRequest{SubnetId: aws.String(subnet), BlockDeviceMappings: disk}
		if r.ImageID != "" {
			o.ImageId = aws.String(r.ImageID)
		}
		return o
	}
	var out []types.FleetLaunchTemplateOverridesRequest
	if q := r.Requirements; q != nil {
		for _, subnet := range r.SubnetIDs {
			o := pool(subnet)
			o.InstanceRequirements = &types.InstanceRequirementsRequest{
				VCpuCount:        &types.VCpuCountRangeRequest{Min: aws.Int32(int32(q.MinVCPU))},
				MemoryMiB:        &types.MemoryMiBRequest{Min: aws.Int32(int32(q.MinMemoryGiB) * 1024)},
				CpuManufacturers: cpuManufacturers[q.Architecture],
			}
			out = append(out, o)
		}
		return out
	}
	for _, it := range r.InstanceTypes {
		for _, subnet := range r.SubnetIDs {
			o := pool(subnet)
			o.InstanceType = types.InstanceType(it)
			out = append(out, o)
		}
	}
	return out
}

// tagSpecifications puts tags on the fleet, the instance and its volumes, in key order (stable
// requests). The fleet carries them too because the stack allows ec2:CreateFleet on fleet/* only
// with the request tag ManagedTag=true.
func tagSpecifications(tags map[string]string) []types.TagSpecification {
	var list []types.Tag
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		list = append(list, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	return []types.TagSpecification{
		{ResourceType: types.ResourceTypeFleet, Tags: list},
		{ResourceType: types.ResourceTypeInstance, Tags: list},
		{ResourceType: types.ResourceTypeVolume, Tags: list},
	}
}
