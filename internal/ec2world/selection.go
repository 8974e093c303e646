package ec2world

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// instanceType is one entry of the catalogue attribute-based selection picks from.
type instanceType struct {
	name   types.InstanceType
	vcpu   int32
	memGiB int32
	arch   string
	cpu    types.CpuManufacturer
}

// catalogue is a small, real subset of EC2's types (sizes as AWS publishes them, all known to
// moto), from 1 to 192 vCPUs and up to 1536 GiB on both architectures: enough for every label
// the labels package accepts. Burstable types are left out, as AWS leaves them out by default.
var catalogue = func() []instanceType {
	intel, amd, graviton := types.CpuManufacturerIntel, types.CpuManufacturerAmd, types.CpuManufacturerAmazonWebServices
	x86, arm := "x86_64", "arm64"
	c := []instanceType{
		{"c5.large", 2, 4, x86, intel}, {"c5.xlarge", 4, 8, x86, intel}, {"c5.2xlarge", 8, 16, x86, intel}, {"c5.4xlarge", 16, 32, x86, intel},
		{"m5.large", 2, 8, x86, intel}, {"m5.xlarge", 4, 16, x86, intel}, {"m5.2xlarge", 8, 32, x86, intel}, {"m5.4xlarge", 16, 64, x86, intel},
		{"m5.8xlarge", 32, 128, x86, intel}, {"m5.16xlarge", 64, 256, x86, intel}, {"m5.24xlarge", 96, 384, x86, intel},
		{"r5.large", 2, 16, x86, intel}, {"r5.xlarge", 4, 32, x86, intel}, {"r5.2xlarge", 8, 64, x86, intel}, {"r5.4xlarge", 16, 128, x86, intel},
		{"r5.8xlarge", 32, 256, x86, intel}, {"r5.16xlarge", 64, 512, x86, intel}, {"r5.24xlarge", 96, 768, x86, intel},
		{"m6a.large", 2, 8, x86, amd}, {"m6a.xlarge", 4, 16, x86, amd}, {"m6a.2xlarge", 8, 32, x86, amd},
		{"m7i.48xlarge", 192, 768, x86, intel}, {"r7i.48xlarge", 192, 1536, x86, intel},
		{"m6g.medium", 1, 4, arm, graviton}, {"m6g.large", 2, 8, arm, graviton}, {"m6g.xlarge", 4, 16, arm, graviton},
		{"m6g.2xlarge", 8, 32, arm, graviton}, {"m6g.4xlarge", 16, 64, arm, graviton}, {"m6g.8xlarge", 32, 128, arm, graviton},
		{"m6g.16xlarge", 64, 256, arm, graviton},
		{"c6g.large", 2, 4, arm, graviton}, {"c6g.xlarge", 4, 8, arm, graviton}, {"c6g.2xlarge", 8, 16, arm, graviton},
		{"r6g.large", 2, 16, arm, graviton}, {"r6g.xlarge", 4, 32, arm, graviton}, {"r6g.2xlarge", 8, 64, arm, graviton},
		{"r6g.4xlarge", 16, 128, arm, graviton}, {"r6g.8xlarge", 32, 256, arm, graviton}, {"r6g.16xlarge", 64, 512, arm, graviton},
		{"m8g.48xlarge", 192, 768, arm, graviton}, {"r8g.48xlarge", 192, 1536, arm, graviton},
	}
	// Smallest first: fewest vCPUs, then least memory, then by name.
	slices.SortFunc(c, func(a, b instanceType) int {
		if a.vcpu != b.vcpu {
			return int(a.vcpu - b.vcpu)
		}
		if a.memGiB != b.memGiB {
			return int(a.memGiB - b.memGiB)
		}
		if a.name < b.name {
			return -1
		}
		return 1
	})
	return c
}()

// pick returns the smallest catalogue type for arch that meets q: vCPU and memory ranges and CPU
// manufacturers. (The other attributes keep AWS's defaults, which the catalogue already meets.)
func pick(q *types.InstanceRequirementsRequest, arch string) (types.InstanceType, bool) {
	for _, t := range catalogue {
		if t.arch != arch || !vcpuRange(q).has(t.vcpu) || !memRange(q).has(t.memGiB*1024) {
			continue
		}
		if len(q.CpuManufacturers) > 0 && !slices.Contains(q.CpuManufacturers, t.cpu) {
			continue
		}
		return t.name, true
	}
	return "", false
}

// bounds is an attribute's range; nil ends are open.
type bounds struct{ lo, hi *int32 }

func (b bounds) has(v int32) bool { return (b.lo == nil || v >= *b.lo) && (b.hi == nil || v <= *b.hi) }

func (b bounds) String() string {
	s := "any"
	if b.lo != nil {
		s = fmt.Sprintf(">= %d", *b.lo)
	}
	if b.hi != nil {
		s += fmt.Sprintf(", <= %d", *b.hi)
	}
	return s
}

func vcpuRange(q *types.InstanceRequirementsRequest) bounds {
	if q.VCpuCount == nil {
		return bounds{}
	}
	return bounds{q.VCpuCount.Min, q.VCpuCount.Max}
}

func memRange(q *types.InstanceRequirementsRequest) bounds {
	if q.MemoryMiB == nil {
		return bounds{}
	}
	return bounds{q.MemoryMiB.Min, q.MemoryMiB.Max}
}

// selectInstanceTypes returns in with every InstanceRequirements override replaced by the instance
// type AWS's attribute-based selection would launch; in itself is left as it is. The architecture
// is the override AMI's, as on AWS, or x86_64 when moto does not know the AMI (or there is none).
func (e *EC2) selectInstanceTypes(ctx context.Context, in *ec2.CreateFleetInput) (*ec2.CreateFleetInput, error) {
	out := *in
	out.LaunchTemplateConfigs = slices.Clone(in.LaunchTemplateConfigs)
	for i, cfg := range out.LaunchTemplateConfigs {
		overrides := slices.Clone(cfg.Overrides)
		for j, o := range overrides {
			if o.InstanceRequirements == nil {
				continue
			}
			arch := e.architecture(ctx, aws.ToString(o.ImageId))
			t, ok := pick(o.InstanceRequirements, arch)
			if !ok {
				return nil, &smithy.OperationError{ServiceID: "EC2", OperationName: CreateFleet, Err: APIError("InvalidParameterValue",
					fmt.Sprintf("ec2world: no %s instance type in its catalogue meets the instance requirements (vCPU %s, memory MiB %s)",
						arch, vcpuRange(o.InstanceRequirements), memRange(o.InstanceRequirements)))}
			}
			o.InstanceRequirements = nil
			o.InstanceType = t
			overrides[j] = o
		}
		out.LaunchTemplateConfigs[i].Overrides = overrides
	}
	return &out, nil
}

// architecture returns the architecture of the AMI as moto describes it, x86_64 when it cannot.
func (e *EC2) architecture(ctx context.Context, imageID string) string {
	if imageID == "" {
		return "x86_64"
	}
	e.mu.Lock()
	arch, ok := e.archs[imageID]
	e.mu.Unlock()
	if ok {
		return arch
	}
	out, err := e.own.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{imageID}})
	var notFound bool
	if err != nil {
		var api smithy.APIError
		notFound = errors.As(err, &api) && strings.HasPrefix(api.ErrorCode(), "InvalidAMIID")
		if !notFound {
			return "x86_64" // not remembered: the next launch asks again
		}
	}
	arch = "x86_64"
	if !notFound && len(out.Images) == 1 && out.Images[0].Architecture != "" {
		arch = string(out.Images[0].Architecture)
	}
	e.mu.Lock()
	e.archs[imageID] = arch
	e.mu.Unlock()
	return arch
}
