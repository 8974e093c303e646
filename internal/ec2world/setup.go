package ec2world

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/awsconfig"
)

// Client returns an EC2 client for moto, or ends the test as world.Endpoint does when the local
// world is not running.
func Client(tb testing.TB) *ec2.Client {
	tb.Helper()
	endpoint := world.Endpoint(tb)
	cfg, err := awsconfig.Load(context.Background(), awsconfig.Options{EndpointURL: endpoint})
	if err != nil {
		tb.Fatalf("ec2world: %v", err)
	}
	return ec2.NewFromConfig(cfg)
}

// World is what Setup created in moto: what a launch needs.
type World struct {
	VPCID string
	// SubnetIDs are two subnets of the VPC, in different availability zones.
	SubnetIDs       []string
	SecurityGroupID string
	// Images maps an architecture ("x86_64", "arm64") to an AMI moto knows with it.
	Images map[string]string
	// LaunchTemplateID is a template like the stack's: no instance type and no AMI (a launch
	// overrides both), the security group, IMDSv2 only, termination on shutdown, an encrypted
	// gp3 root volume.
	LaunchTemplateID string
}

// Setup creates a fresh VPC, two subnets, a security group and a launch template in moto, picks an
// x86_64 and an arm64 AMI among moto's own, and fails the test when any of it fails. Every call
// makes new resources, so parallel tests do not share them; moto is thrown away after the run.
func Setup(tb testing.TB, client *ec2.Client) World {
	tb.Helper()
	w, err := SetupWorld(context.Background(), client)
	if err != nil {
		tb.Fatalf("ec2world: %v", err)
	}
	return w
}

// SetupWorld is Setup for callers that are not tests (the local stack of make demo).
func SetupWorld(ctx context.Context, client *ec2.Client) (World, error) {
	var w World
	vpc, err := client.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16")})
	if err != nil {
		return w, fmt.Errorf("setup: create VPC: %w", err)
	}
	w.VPCID = aws.ToString(vpc.Vpc.VpcId)

	zones, err := client.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
	if err != nil {
		return w, fmt.Errorf("setup: describe availability zones: %w", err)
	}
	names := make([]string, 0, len(zones.AvailabilityZones))
	for _, z := range zones.AvailabilityZones {
		names = append(names, aws.ToString(z.ZoneName))
	}
	slices.Sort(names)
	if len(names) < 2 {
		return w, fmt.Errorf("setup: moto has %d availability zones, want 2", len(names))
	}
	for i, cidr := range []string{"10.0.1.0/24", "10.0.2.0/24"} {
		sn, err := client.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String(cidr), AvailabilityZone: aws.String(names[i])})
		if err != nil {
			return w, fmt.Errorf("setup: create subnet: %w", err)
		}
		w.SubnetIDs = append(w.SubnetIDs, aws.ToString(sn.Subnet.SubnetId))
	}

	suffix := fleetID()[len("fleet-"):]
	sg, err := client.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("spotrunner-runner-" + suffix), Description: aws.String("runners: no inbound"), VpcId: vpc.Vpc.VpcId,
	})
	if err != nil {
		return w, fmt.Errorf("setup: create security group: %w", err)
	}
	w.SecurityGroupID = aws.ToString(sg.GroupId)

	w.Images = map[string]string{}
	for _, arch := range []string{"x86_64", "arm64"} {
		if w.Images[arch], err = image(ctx, client, arch); err != nil {
			return w, err
		}
	}

	lt, err := client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("spotrunner-runner-" + suffix),
		LaunchTemplateData: &types.RequestLaunchTemplateData{
			SecurityGroupIds:                  []string{w.SecurityGroupID},
			InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
			MetadataOptions: &types.LaunchTemplateInstanceMetadataOptionsRequest{
				HttpTokens:              types.LaunchTemplateHttpTokensStateRequired,
				HttpPutResponseHopLimit: aws.Int32(1),
				HttpEndpoint:            types.LaunchTemplateInstanceMetadataEndpointStateEnabled,
			},
			BlockDeviceMappings: []types.LaunchTemplateBlockDeviceMappingRequest{{
				DeviceName: aws.String("/dev/sda1"),
				Ebs: &types.LaunchTemplateEbsBlockDeviceRequest{
					VolumeSize: aws.Int32(30), VolumeType: types.VolumeTypeGp3, Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(true),
				},
			}},
		},
	})
	if err != nil {
		return w, fmt.Errorf("setup: create launch template: %w", err)
	}
	w.LaunchTemplateID = aws.ToString(lt.LaunchTemplate.LaunchTemplateId)
	return w, nil
}

// image returns the newest Ubuntu AMI moto knows for arch, or its newest AMI of any kind.
func image(ctx context.Context, client *ec2.Client, arch string) (string, error) {
	for _, filters := range [][]types.Filter{
		{{Name: aws.String("architecture"), Values: []string{arch}}, {Name: aws.String("name"), Values: []string{"ubuntu*"}}},
		{{Name: aws.String("architecture"), Values: []string{arch}}},
	} {
		out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: filters})
		if err != nil {
			return "", fmt.Errorf("setup: describe %s images: %w", arch, err)
		}
		if len(out.Images) == 0 {
			continue
		}
		newest := slices.MaxFunc(out.Images, func(a, b types.Image) int {
			return cmp.Or(cmp.Compare(aws.ToString(a.CreationDate), aws.ToString(b.CreationDate)), cmp.Compare(aws.ToString(a.ImageId), aws.ToString(b.ImageId)))
		})
		return aws.ToString(newest.ImageId), nil
	}
	return "", fmt.Errorf("setup: moto knows no %s AMI", arch)
}

// CopyImage registers a fresh AMI in moto, a copy of source (same architecture), and fails the
// test when it cannot: an AMI of the test's own, which it may deregister without disturbing the
// tests that share moto's built-in AMIs.
func CopyImage(tb testing.TB, client *ec2.Client, source string) string {
	tb.Helper()
	out, err := client.CopyImage(context.Background(), &ec2.CopyImageInput{
		SourceImageId: aws.String(source), SourceRegion: aws.String(client.Options().Region),
		Name: aws.String("spotrunner-test-" + fleetID()[len("fleet-"):]),
	})
	if err != nil {
		tb.Fatalf("ec2world: copy image %s: %v", source, err)
	}
	return aws.ToString(out.ImageId)
}
