package awsgateway

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// formError is a CreateFleet form the gateway refuses, with the EC2 error code it answers.
type formError struct {
	code, message string
}

func (e *formError) Error() string { return e.code + ": " + e.message }

// decodeCreateFleet reads EC2's query form of a CreateFleet request (as aws-sdk-go-v2's ec2query
// serializer writes it: lists flattened as Name.1, Name.2, ...) into the SDK's input. It knows
// the parameters libs/fleet sends (request.go's fleetInput), plus a launch template's name and
// the maxima of the vCPU and memory requirements; any other parameter is refused with
// UnknownParameter naming it, never dropped: a request the gateway cannot read whole must not
// launch as something else.
func decodeCreateFleet(form url.Values) (*ec2.CreateFleetInput, error) {
	f := &queryForm{values: form, used: map[string]bool{"Action": true, "Version": true}}
	in := &ec2.CreateFleetInput{
		ClientToken: f.str("ClientToken"),
		Type:        types.FleetType(f.enum("Type")),
	}
	if f.has("TargetCapacitySpecification") {
		in.TargetCapacitySpecification = &types.TargetCapacitySpecificationRequest{
			TotalTargetCapacity:       f.int32("TargetCapacitySpecification.TotalTargetCapacity"),
			DefaultTargetCapacityType: types.DefaultTargetCapacityType(f.enum("TargetCapacitySpecification.DefaultTargetCapacityType")),
			OnDemandTargetCapacity:    f.int32("TargetCapacitySpecification.OnDemandTargetCapacity"),
			SpotTargetCapacity:        f.int32("TargetCapacitySpecification.SpotTargetCapacity"),
		}
	}
	if f.has("SpotOptions") {
		in.SpotOptions = &types.SpotOptionsRequest{AllocationStrategy: types.SpotAllocationStrategy(f.enum("SpotOptions.AllocationStrategy"))}
	}
	if f.has("OnDemandOptions") {
		in.OnDemandOptions = &types.OnDemandOptionsRequest{AllocationStrategy: types.FleetOnDemandAllocationStrategy(f.enum("OnDemandOptions.AllocationStrategy"))}
	}
	for _, c := range f.list("LaunchTemplateConfigs") {
		var cfg types.FleetLaunchTemplateConfigRequest
		if s := c + ".LaunchTemplateSpecification"; f.has(s) {
			cfg.LaunchTemplateSpecification = &types.FleetLaunchTemplateSpecificationRequest{
				LaunchTemplateId:   f.str(s + ".LaunchTemplateId"),
				LaunchTemplateName: f.str(s + ".LaunchTemplateName"),
				Version:            f.str(s + ".Version"),
			}
		}
		for _, o := range f.list(c + ".Overrides") {
			cfg.Overrides = append(cfg.Overrides, f.override(o))
		}
		in.LaunchTemplateConfigs = append(in.LaunchTemplateConfigs, cfg)
	}
	for _, s := range f.list("TagSpecification") {
		spec := types.TagSpecification{ResourceType: types.ResourceType(f.enum(s + ".ResourceType"))}
		for _, t := range f.list(s + ".Tag") {
			spec.Tags = append(spec.Tags, types.Tag{Key: f.str(t + ".Key"), Value: f.str(t + ".Value")})
		}
		in.TagSpecifications = append(in.TagSpecifications, spec)
	}
	if f.err != nil {
		return nil, f.err
	}
	if unused := f.unused(); len(unused) > 0 {
		return nil, &formError{code: "UnknownParameter", message: fmt.Sprintf(
			"awsgateway: CreateFleet parameter(s) %s not emulated: the local world decodes only what libs/fleet sends", strings.Join(unused, ", "))}
	}
	return in, nil
}

// override reads one pool, key prefix o (LaunchTemplateConfigs.1.Overrides.2).
func (f *queryForm) override(o string) types.FleetLaunchTemplateOverridesRequest {
	ov := types.FleetLaunchTemplateOverridesRequest{
		SubnetId:     f.str(o + ".SubnetId"),
		ImageId:      f.str(o + ".ImageId"),
		InstanceType: types.InstanceType(f.enum(o + ".InstanceType")),
	}
	for _, b := range f.list(o + ".BlockDeviceMapping") {
		m := types.FleetBlockDeviceMappingRequest{DeviceName: f.str(b + ".DeviceName")}
		if e := b + ".Ebs"; f.has(e) {
			m.Ebs = &types.FleetEbsBlockDeviceRequest{
				VolumeSize:          f.int32(e + ".VolumeSize"),
				VolumeType:          types.VolumeType(f.enum(e + ".VolumeType")),
				Encrypted:           f.bool(e + ".Encrypted"),
				DeleteOnTermination: f.bool(e + ".DeleteOnTermination"),
			}
		}
		ov.BlockDeviceMappings = append(ov.BlockDeviceMappings, m)
	}
	if q := o + ".InstanceRequirements"; f.has(q) {
		req := &types.InstanceRequirementsRequest{}
		if v := q + ".VCpuCount"; f.has(v) {
			req.VCpuCount = &types.VCpuCountRangeRequest{Min: f.int32(v + ".Min"), Max: f.int32(v + ".Max")}
		}
		if m := q + ".MemoryMiB"; f.has(m) {
			req.MemoryMiB = &types.MemoryMiBRequest{Min: f.int32(m + ".Min"), Max: f.int32(m + ".Max")}
		}
		for _, c := range f.list(q + ".CpuManufacturer") {
			req.CpuManufacturers = append(req.CpuManufacturers, types.CpuManufacturer(f.enum(c)))
		}
		ov.InstanceRequirements = req
	}
	return ov
}

// queryForm reads a query form strictly: it remembers the keys read, so that unused reports the
// ones nothing understood, and its first malformed value.
type queryForm struct {
	values url.Values
	used   map[string]bool
	err    error
}

func (f *queryForm) fail(code, format string, args ...any) {
	if f.err == nil {
		f.err = &formError{code: code, message: "awsgateway: CreateFleet: " + fmt.Sprintf(format, args...)}
	}
}

// str is key's value, nil when absent.
func (f *queryForm) str(key string) *string {
	v, ok := f.values[key]
	if !ok {
		return nil
	}
	f.used[key] = true
	if len(v) != 1 {
		f.fail("InvalidParameterValue", "parameter %s given %d times", key, len(v))
		return nil
	}
	s := v[0]
	return &s
}

func (f *queryForm) enum(key string) string {
	if p := f.str(key); p != nil {
		return *p
	}
	return ""
}

func (f *queryForm) int32(key string) *int32 {
	p := f.str(key)
	if p == nil {
		return nil
	}
	n, err := strconv.ParseInt(*p, 10, 32)
	if err != nil {
		f.fail("InvalidParameterValue", "parameter %s: %q is not an integer", key, *p)
		return nil
	}
	v := int32(n)
	return &v
}

func (f *queryForm) bool(key string) *bool {
	p := f.str(key)
	if p == nil {
		return nil
	}
	v, err := strconv.ParseBool(*p)
	if err != nil || (*p != "true" && *p != "false") {
		f.fail("InvalidParameterValue", "parameter %s: %q is not true or false", key, *p)
		return nil
	}
	return &v
}

// has reports whether any key is prefix or lies under it (prefix.…).
func (f *queryForm) has(prefix string) bool {
	for k := range f.values {
		if k == prefix || strings.HasPrefix(k, prefix+".") {
			return true
		}
	}
	return false
}

// list returns the item prefixes of the flattened list prefix (prefix.1, prefix.2, ...), which
// must be numbered 1 to n without a gap, as the SDK writes them.
func (f *queryForm) list(prefix string) []string {
	var idx []int
	for k := range f.values {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		first, _, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(first)
		if err != nil || n < 1 || strconv.Itoa(n) != first {
			continue // not an item: left to unused
		}
		idx = append(idx, n)
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	var out []string
	for i, n := range idx {
		if n != i+1 {
			f.fail("InvalidParameterValue", "list %s has no item %d", prefix, i+1)
			return nil
		}
		out = append(out, prefix+"."+strconv.Itoa(n))
	}
	return out
}

// unused returns the keys nothing read, sorted.
func (f *queryForm) unused() []string {
	var out []string
	for k := range f.values {
		if !f.used[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
