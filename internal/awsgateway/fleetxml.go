package awsgateway

import (
	"encoding/xml"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// ec2Namespace is the XML namespace of EC2's answers (API version 2016-11-15, the one the SDK
// sends).
const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// The CreateFleet answer as EC2 writes it
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateFleet.html): lists are
// <name><item>…</item></name>. A nil list or struct is left out and an empty one written empty,
// which is how the SDK's decoder tells them apart, so an answer decodes to exactly the output it
// was encoded from.
type (
	xmlItems[T any] struct {
		Items []T `xml:"item"`
	}
	createFleetXML struct {
		XMLName   xml.Name                    `xml:"CreateFleetResponse"`
		Xmlns     string                      `xml:"xmlns,attr"`
		RequestID string                      `xml:"requestId"`
		FleetID   *string                     `xml:"fleetId"`
		Errors    *xmlItems[fleetErrorXML]    `xml:"errorSet"`
		Instances *xmlItems[fleetInstanceXML] `xml:"fleetInstanceSet"`
	}
	fleetErrorXML struct {
		LaunchTemplateAndOverrides *templateAndOverridesXML `xml:"launchTemplateAndOverrides"`
		Lifecycle                  string                   `xml:"lifecycle,omitempty"`
		ErrorCode                  *string                  `xml:"errorCode"`
		ErrorMessage               *string                  `xml:"errorMessage"`
	}
	fleetInstanceXML struct {
		LaunchTemplateAndOverrides *templateAndOverridesXML `xml:"launchTemplateAndOverrides"`
		Lifecycle                  string                   `xml:"lifecycle,omitempty"`
		InstanceIDs                *xmlItems[string]        `xml:"instanceIds"`
		InstanceType               string                   `xml:"instanceType,omitempty"`
		Platform                   string                   `xml:"platform,omitempty"`
		AvailabilityZone           *string                  `xml:"availabilityZone"`
		AvailabilityZoneID         *string                  `xml:"availabilityZoneId"`
		SubnetID                   *string                  `xml:"subnetId"`
	}
	templateAndOverridesXML struct {
		LaunchTemplateSpecification *templateSpecXML `xml:"launchTemplateSpecification"`
		Overrides                   *overridesXML    `xml:"overrides"`
	}
	templateSpecXML struct {
		LaunchTemplateID   *string `xml:"launchTemplateId"`
		LaunchTemplateName *string `xml:"launchTemplateName"`
		Version            *string `xml:"version"`
	}
	overridesXML struct {
		AvailabilityZone    *string                   `xml:"availabilityZone"`
		AvailabilityZoneID  *string                   `xml:"availabilityZoneId"`
		BlockDeviceMappings *xmlItems[blockDeviceXML] `xml:"blockDeviceMappingSet"`
		ImageID             *string                   `xml:"imageId"`
		InstanceType        string                    `xml:"instanceType,omitempty"`
		MaxPrice            *string                   `xml:"maxPrice"`
		Priority            *string                   `xml:"priority"`
		SubnetID            *string                   `xml:"subnetId"`
		WeightedCapacity    *string                   `xml:"weightedCapacity"`
	}
	blockDeviceXML struct {
		DeviceName  *string `xml:"deviceName"`
		Ebs         *ebsXML `xml:"ebs"`
		NoDevice    *string `xml:"noDevice"`
		VirtualName *string `xml:"virtualName"`
	}
	ebsXML struct {
		DeleteOnTermination *bool   `xml:"deleteOnTermination"`
		Encrypted           *bool   `xml:"encrypted"`
		Iops                *int32  `xml:"iops"`
		KmsKeyID            *string `xml:"kmsKeyId"`
		SnapshotID          *string `xml:"snapshotId"`
		Throughput          *int32  `xml:"throughput"`
		VolumeSize          *int32  `xml:"volumeSize"`
		VolumeType          string  `xml:"volumeType,omitempty"`
	}
)

// encodeCreateFleet writes out as EC2's XML answer. Parts of an output it cannot write (an
// override's InstanceRequirements or Placement, which the gateway never produces) are an error,
// not a silent loss.
func encodeCreateFleet(out *ec2.CreateFleetOutput, requestID string) ([]byte, error) {
	doc := createFleetXML{Xmlns: ec2Namespace, RequestID: requestID, FleetID: out.FleetId}
	if out.Errors != nil {
		doc.Errors = &xmlItems[fleetErrorXML]{}
		for _, e := range out.Errors {
			lto, err := templateAndOverrides(e.LaunchTemplateAndOverrides)
			if err != nil {
				return nil, err
			}
			doc.Errors.Items = append(doc.Errors.Items, fleetErrorXML{
				LaunchTemplateAndOverrides: lto, Lifecycle: string(e.Lifecycle), ErrorCode: e.ErrorCode, ErrorMessage: e.ErrorMessage,
			})
		}
	}
	if out.Instances != nil {
		doc.Instances = &xmlItems[fleetInstanceXML]{}
		for _, i := range out.Instances {
			lto, err := templateAndOverrides(i.LaunchTemplateAndOverrides)
			if err != nil {
				return nil, err
			}
			x := fleetInstanceXML{
				LaunchTemplateAndOverrides: lto, Lifecycle: string(i.Lifecycle), InstanceType: string(i.InstanceType),
				Platform: string(i.Platform), AvailabilityZone: i.AvailabilityZone, AvailabilityZoneID: i.AvailabilityZoneId, SubnetID: i.SubnetId,
			}
			if i.InstanceIds != nil {
				x.InstanceIDs = &xmlItems[string]{Items: i.InstanceIds}
			}
			doc.Instances.Items = append(doc.Instances.Items, x)
		}
	}
	body, err := xml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode CreateFleet answer: %w", err)
	}
	return append([]byte(xml.Header), body...), nil
}

func templateAndOverrides(in *types.LaunchTemplateAndOverridesResponse) (*templateAndOverridesXML, error) {
	if in == nil {
		return nil, nil
	}
	out := &templateAndOverridesXML{}
	if s := in.LaunchTemplateSpecification; s != nil {
		out.LaunchTemplateSpecification = &templateSpecXML{LaunchTemplateID: s.LaunchTemplateId, LaunchTemplateName: s.LaunchTemplateName, Version: s.Version}
	}
	o := in.Overrides
	if o == nil {
		return out, nil
	}
	if o.InstanceRequirements != nil || o.Placement != nil {
		return nil, fmt.Errorf("encode CreateFleet answer: overrides with InstanceRequirements or Placement are not encoded")
	}
	out.Overrides = &overridesXML{
		AvailabilityZone: o.AvailabilityZone, AvailabilityZoneID: o.AvailabilityZoneId, ImageID: o.ImageId,
		InstanceType: string(o.InstanceType), MaxPrice: o.MaxPrice, SubnetID: o.SubnetId,
		Priority: float(o.Priority), WeightedCapacity: float(o.WeightedCapacity),
	}
	if o.BlockDeviceMappings != nil {
		out.Overrides.BlockDeviceMappings = &xmlItems[blockDeviceXML]{}
		for _, m := range o.BlockDeviceMappings {
			b := blockDeviceXML{DeviceName: m.DeviceName, NoDevice: m.NoDevice, VirtualName: m.VirtualName}
			if e := m.Ebs; e != nil {
				b.Ebs = &ebsXML{
					DeleteOnTermination: e.DeleteOnTermination, Encrypted: e.Encrypted, Iops: e.Iops, KmsKeyID: e.KmsKeyId,
					SnapshotID: e.SnapshotId, Throughput: e.Throughput, VolumeSize: e.VolumeSize, VolumeType: string(e.VolumeType),
				}
			}
			out.Overrides.BlockDeviceMappings.Items = append(out.Overrides.BlockDeviceMappings.Items, b)
		}
	}
	return out, nil
}

// float writes a double as the SDK reads it back exactly.
func float(v *float64) *string {
	if v == nil {
		return nil
	}
	s := strconv.FormatFloat(*v, 'g', -1, 64)
	return &s
}
