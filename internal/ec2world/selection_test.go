package ec2world

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestPick: fixtures are requirements blocks as libs/fleet sends them (minimums, CPU manufacturers)
// and a few with maximums. Each must pick the smallest catalogue type of the AMI's architecture
// that meets them, or none when nothing does.
func TestPick(t *testing.T) {
	t.Parallel()
	req := func(minCPU, minGiB int32, cpus ...types.CpuManufacturer) *types.InstanceRequirementsRequest {
		return &types.InstanceRequirementsRequest{
			VCpuCount:        &types.VCpuCountRangeRequest{Min: aws.Int32(minCPU)},
			MemoryMiB:        &types.MemoryMiBRequest{Min: aws.Int32(minGiB * 1024)},
			CpuManufacturers: cpus,
		}
	}
	x86 := []types.CpuManufacturer{types.CpuManufacturerIntel, types.CpuManufacturerAmd}
	graviton := types.CpuManufacturerAmazonWebServices
	capped := req(2, 32)
	capped.VCpuCount.Max = aws.Int32(2)
	tests := []struct {
		name string
		q    *types.InstanceRequirementsRequest
		arch string
		want types.InstanceType // "" for none
	}{
		{"cpu=4,ram=16 x86_64", req(4, 16, x86...), "x86_64", "m5.xlarge"},
		{"cpu=4,ram=16 arm64", req(4, 16, graviton), "arm64", "m6g.xlarge"},
		{"cpu=1 arm64", req(1, 0, graviton), "arm64", "m6g.medium"},
		{"cpu=1 x86_64 has no 1-vCPU type", req(1, 0, x86...), "x86_64", "c5.large"},
		{"cpu=4 compute", req(4, 8), "x86_64", "c5.xlarge"},
		{"ram=32 cpu=2 needs 4 vCPUs", req(2, 32), "x86_64", "r5.xlarge"},
		{"amd only", req(4, 16, types.CpuManufacturerAmd), "x86_64", "m6a.xlarge"},
		{"upper bounds", req(192, 1024, x86...), "x86_64", "r7i.48xlarge"},
		{"upper bounds arm64", req(192, 1024, graviton), "arm64", "r8g.48xlarge"},
		{"beyond the catalogue", req(193, 0), "x86_64", ""},
		{"AMI architecture against the manufacturers", req(2, 0, graviton), "x86_64", ""},
		{"maximum excludes every fit", capped, "x86_64", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := pick(tt.q, tt.arch)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("pick() = %q, %v; want %q", got, ok, tt.want)
			}
		})
	}
}
