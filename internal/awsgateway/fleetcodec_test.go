package awsgateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/fleet"
)

// testConfig is an SDK config for endpoint with static credentials and no retries, so that a
// test sees each answer as the gateway (or a fake) gave it.
func testConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
}

// asJSON is v as JSON, for comparing SDK structs (their unexported fields keep cmp away); JSON
// keeps nil and empty lists apart.
func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// minimalInput is the smallest CreateFleet input the SDK sends (it checks the required
// parameters before sending), changed by mod.
func minimalInput(mod func(*ec2.CreateFleetInput)) *ec2.CreateFleetInput {
	in := &ec2.CreateFleetInput{
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{TotalTargetCapacity: aws.Int32(1)},
		LaunchTemplateConfigs:       []types.FleetLaunchTemplateConfigRequest{{Overrides: []types.FleetLaunchTemplateOverridesRequest{{InstanceType: "m5.large"}}}},
	}
	if mod != nil {
		mod(in)
	}
	return in
}

// fleetInputs are the CreateFleet inputs libs/fleet sends (its golden files), by file name.
func fleetInputs(t *testing.T) map[string]*ec2.CreateFleetInput {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(world.Root(), "libs", "fleet", "testdata", "*.golden.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("libs/fleet golden files: %v (found %d)", err, len(files))
	}
	out := map[string]*ec2.CreateFleetInput{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ins []*ec2.CreateFleetInput
		if err := json.Unmarshal(b, &ins); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i, in := range ins {
			out[strings.TrimSuffix(filepath.Base(f), ".golden.json")+"#"+string(rune('1'+i))] = in
		}
	}
	return out
}

// TestDecodeCreateFleet: fixtures are libs/fleet's golden CreateFleet inputs (every request it
// sends) and two more using what the decoder accepts beyond them. Each is sent by the real SDK
// client to a recording server on loopback; the form decoded must equal the input the client
// was given, field for field. Inputs with a parameter the decoder does not know must be refused
// with UnknownParameter naming it.
func TestDecodeCreateFleet(t *testing.T) {
	t.Parallel()
	inputs := fleetInputs(t)
	inputs["template name, requirement maxima, split capacity"] = &ec2.CreateFleetInput{
		Type:        types.FleetTypeInstant,
		ClientToken: aws.String("token-1"),
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{
			TotalTargetCapacity: aws.Int32(2), OnDemandTargetCapacity: aws.Int32(1), SpotTargetCapacity: aws.Int32(1),
			DefaultTargetCapacityType: types.DefaultTargetCapacityTypeOnDemand,
		},
		LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{LaunchTemplateName: aws.String("runner"), Version: aws.String("3")},
			Overrides: []types.FleetLaunchTemplateOverridesRequest{{
				SubnetId: aws.String("subnet-1"),
				InstanceRequirements: &types.InstanceRequirementsRequest{
					VCpuCount: &types.VCpuCountRangeRequest{Min: aws.Int32(2), Max: aws.Int32(8)},
					MemoryMiB: &types.MemoryMiBRequest{Min: aws.Int32(1024), Max: aws.Int32(65536)},
				},
			}},
		}, {
			LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{LaunchTemplateId: aws.String("lt-2")},
		}},
	}
	inputs["values that need escaping"] = minimalInput(func(in *ec2.CreateFleetInput) {
		in.ClientToken = aws.String("a b&c=d/é")
		in.TagSpecifications = []types.TagSpecification{{
			ResourceType: types.ResourceTypeInstance,
			Tags:         []types.Tag{{Key: aws.String("k=1&2"), Value: aws.String("")}, {Key: aws.String("spotrunner:job"), Value: aws.String("ghes.example.com/1 2")}},
		}}
	})

	var mu sync.Mutex
	var decoded *ec2.CreateFleetInput
	var decodeErr error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		in, err := decodeCreateFleet(r.PostForm)
		mu.Lock()
		decoded, decodeErr = in, err
		mu.Unlock()
		body, _ := encodeCreateFleet(&ec2.CreateFleetOutput{FleetId: aws.String("fleet-1")}, "req-1")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	client := ec2.NewFromConfig(testConfig(srv.URL))

	for name, in := range inputs {
		mu.Lock() // cases run one at a time: the server keeps one result
		decoded, decodeErr = nil, nil
		mu.Unlock()
		if _, err := client.CreateFleet(context.Background(), in); err != nil {
			t.Fatalf("%s: CreateFleet: %v", name, err)
		}
		mu.Lock()
		got, err := decoded, decodeErr
		mu.Unlock()
		if err != nil {
			t.Errorf("%s: decode: %v", name, err)
			continue
		}
		if diff := cmp.Diff(asJSON(t, in), asJSON(t, got)); diff != "" {
			t.Errorf("%s: decoded input (-sent +decoded):\n%s", name, diff)
		}
	}

	refused := []struct {
		name string
		in   *ec2.CreateFleetInput
		want string // the parameter the refusal names
	}{
		{name: "DryRun", in: minimalInput(func(in *ec2.CreateFleetInput) { in.DryRun = aws.Bool(true) }), want: "DryRun"},
		{name: "Context", in: minimalInput(func(in *ec2.CreateFleetInput) { in.Context = aws.String("x") }), want: "Context"},
		{name: "spot pools", in: minimalInput(func(in *ec2.CreateFleetInput) {
			in.SpotOptions = &types.SpotOptionsRequest{InstancePoolsToUseCount: aws.Int32(2)}
		}), want: "SpotOptions.InstancePoolsToUseCount"},
		{name: "override priority", in: minimalInput(func(in *ec2.CreateFleetInput) {
			in.LaunchTemplateConfigs[0].Overrides[0].Priority = aws.Float64(1)
		}), want: "LaunchTemplateConfigs.1.Overrides.1.Priority"},
		{name: "burstable requirement", in: minimalInput(func(in *ec2.CreateFleetInput) {
			in.LaunchTemplateConfigs[0].Overrides[0].InstanceRequirements = &types.InstanceRequirementsRequest{
				VCpuCount: &types.VCpuCountRangeRequest{Min: aws.Int32(1)}, MemoryMiB: &types.MemoryMiBRequest{Min: aws.Int32(1)},
				BurstablePerformance: types.BurstablePerformanceIncluded,
			}
		}), want: "LaunchTemplateConfigs.1.Overrides.1.InstanceRequirements.BurstablePerformance"},
	}
	for _, tt := range refused {
		if _, err := client.CreateFleet(context.Background(), tt.in); err != nil {
			t.Fatalf("%s: CreateFleet: %v", tt.name, err)
		}
		mu.Lock()
		err := decodeErr
		mu.Unlock()
		var fe *formError
		if !errors.As(err, &fe) || fe.code != "UnknownParameter" || !strings.Contains(fe.message, tt.want) {
			t.Errorf("%s: decode error = %v, want UnknownParameter naming %s", tt.name, err, tt.want)
		}
	}

	// A gap in a list, or a malformed number, is refused too.
	for form, want := range map[string]string{
		"Action=CreateFleet&TagSpecification.2.ResourceType=instance":                                   "no item 1",
		"Action=CreateFleet&TargetCapacitySpecification.TotalTargetCapacity=one":                        "not an integer",
		"Action=CreateFleet&ClientToken=a&ClientToken=b":                                                "given 2 times",
		"Action=CreateFleet&LaunchTemplateConfigs.1.Overrides.1.BlockDeviceMapping.1.Ebs.Encrypted=yes": "not true or false",
	} {
		values, err := url.ParseQuery(form)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeCreateFleet(values); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("decode %q: err = %v, want one saying %q", form, err, want)
		}
	}
}

// recordingEC2 is libs/fleet's EC2 over a real SDK client: it keeps each CreateFleet input that
// libs/fleet built, as JSON, before the SDK serializes it.
type recordingEC2 struct {
	*ec2.Client
	t    *testing.T
	mu   sync.Mutex
	sent []string
}

func (r *recordingEC2) CreateFleet(ctx context.Context, in *ec2.CreateFleetInput, optFns ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error) {
	r.mu.Lock()
	r.sent = append(r.sent, asJSON(r.t, in))
	r.mu.Unlock()
	return r.Client.CreateFleet(ctx, in, optFns...)
}

// TestDecodeLibsFleetRequests: fixtures are launches made with libs/fleet itself (its Client,
// so its own request builder and the real SDK serializer) for each strategy, with instance types
// or requirements of each architecture, a disk, an AMI and tags that need escaping. A loopback
// server decodes every CreateFleet it receives and answers a spot shortage, so that
// SpotPreferred sends its on-demand fallback too. Every request decoded must equal, field for
// field, the input libs/fleet handed the SDK, in the order sent.
func TestDecodeLibsFleetRequests(t *testing.T) {
	t.Parallel()
	tags := map[string]string{"spotrunner:job": "ghes.example.com/42", "spotrunner:host": "ghes.example.com", "odd": "a&b=c d/é+%2F"}
	tests := []struct {
		name string
		req  fleet.Request
		want int // CreateFleet calls
	}{
		{name: "spotOnly, types, disk, AMI", want: 1, req: fleet.Request{
			ClientToken: "ghes-example-com-42-a1", LaunchTemplateID: "lt-0123456789abcdef0", ImageID: "ami-0aaaaaaaaaaaaaaaa",
			InstanceTypes: []string{"m5.large", "m5.xlarge"}, SubnetIDs: []string{"subnet-a", "subnet-b"},
			Strategy: fleet.SpotOnly, DiskSizeGB: 100, Tags: tags,
		}},
		{name: "onDemandOnly, arm64 requirements, template's disk and AMI", want: 1, req: fleet.Request{
			ClientToken: "ghes-example-com-43-a1", LaunchTemplateID: "lt-0123456789abcdef0",
			Requirements: &fleet.Requirements{MinVCPU: 8, MinMemoryGiB: 32, Architecture: fleet.ARM64}, SubnetIDs: []string{"subnet-a"},
			Strategy: fleet.OnDemandOnly,
		}},
		{name: "spotPreferred, x86_64 requirements, fallback", want: 2, req: fleet.Request{
			ClientToken: "ghes-example-com-44-a2", LaunchTemplateID: "lt-0123456789abcdef0", ImageID: "ami-0bbbbbbbbbbbbbbbb",
			Requirements: &fleet.Requirements{MinVCPU: 4, MinMemoryGiB: 16, Architecture: fleet.X86_64}, SubnetIDs: []string{"subnet-a", "subnet-b", "subnet-c"},
			Strategy: fleet.SpotPreferred, DiskSizeGB: 40, Tags: tags,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var decoded []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := r.ParseForm(); err != nil {
					t.Error(err)
				}
				in, err := decodeCreateFleet(r.PostForm)
				if err != nil {
					t.Errorf("decode: %v", err)
					writeError(w, &request{http: r, protocol: protoEC2}, http.StatusBadRequest, "UnknownParameter", err.Error())
					return
				}
				mu.Lock()
				decoded = append(decoded, asJSON(t, in))
				mu.Unlock()
				body, err := encodeCreateFleet(&ec2.CreateFleetOutput{FleetId: aws.String("fleet-1"), Errors: []types.CreateFleetError{{
					ErrorCode: aws.String("InsufficientInstanceCapacity"), ErrorMessage: aws.String("There is no Spot capacity available that matches your request."),
				}}}, "req-1")
				if err != nil {
					t.Error(err)
				}
				_, _ = w.Write(body)
			}))
			t.Cleanup(srv.Close)
			rec := &recordingEC2{Client: ec2.NewFromConfig(testConfig(srv.URL)), t: t}

			_, err := fleet.New(rec).Launch(context.Background(), tt.req)
			if !errors.Is(err, fleet.ErrCapacity) {
				t.Errorf("Launch: %v, want the server's shortage (ErrCapacity)", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(rec.sent) != tt.want {
				t.Errorf("libs/fleet sent %d requests, want %d", len(rec.sent), tt.want)
			}
			if diff := cmp.Diff(rec.sent, decoded); diff != "" {
				t.Errorf("decoded requests (-sent +decoded):\n%s", diff)
			}
		})
	}
}

// TestEncodeCreateFleet: fixtures are CreateFleet outputs as ec2world returns them (moto's
// answer with every field moto and the layer fill, an injected fleet error, an empty answer).
// Each is encoded, served on loopback and decoded by the real SDK client: the client must get
// back exactly the output encoded, nil and empty lists kept apart.
func TestEncodeCreateFleet(t *testing.T) {
	t.Parallel()
	spec := &types.FleetLaunchTemplateSpecification{LaunchTemplateId: aws.String("lt-0123456789abcdef0"), Version: aws.String("$Default")}
	tests := []struct {
		name string
		out  *ec2.CreateFleetOutput
	}{
		{name: "launched", out: &ec2.CreateFleetOutput{
			FleetId: aws.String("fleet-11111111-2222-3333-4444-555555555555"),
			Instances: []types.CreateFleetInstance{{
				InstanceIds: []string{"i-0123456789abcdef0"}, InstanceType: "m5.large", Lifecycle: types.InstanceLifecycleSpot,
				Platform: types.PlatformValuesWindows, SubnetId: aws.String("subnet-a"), AvailabilityZone: aws.String("us-east-1a"),
				AvailabilityZoneId: aws.String("use1-az1"),
				LaunchTemplateAndOverrides: &types.LaunchTemplateAndOverridesResponse{
					LaunchTemplateSpecification: spec,
					Overrides: &types.FleetLaunchTemplateOverrides{
						InstanceType: "m5.large", SubnetId: aws.String("subnet-a"), ImageId: aws.String("ami-0aaaaaaaaaaaaaaaa"),
						AvailabilityZone: aws.String("us-east-1a"), MaxPrice: aws.String("0.05"), Priority: aws.Float64(1.5), WeightedCapacity: aws.Float64(1),
						BlockDeviceMappings: []types.BlockDeviceMappingResponse{{
							DeviceName: aws.String("/dev/sda1"),
							Ebs: &types.EbsBlockDeviceResponse{
								VolumeSize: aws.Int32(100), VolumeType: types.VolumeTypeGp3, Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(false),
								Iops: aws.Int32(3000), Throughput: aws.Int32(125), KmsKeyId: aws.String("k"), SnapshotId: aws.String("snap-1"),
							},
						}, {DeviceName: aws.String("/dev/sdb"), NoDevice: aws.String(""), VirtualName: aws.String("ephemeral0")}},
					},
				},
			}, {InstanceIds: []string{}, Lifecycle: types.InstanceLifecycleOnDemand}},
			Errors: []types.CreateFleetError{},
		}},
		{name: "fleet error", out: &ec2.CreateFleetOutput{
			FleetId: aws.String("fleet-1"),
			Errors: []types.CreateFleetError{{
				ErrorCode: aws.String("InsufficientInstanceCapacity"), ErrorMessage: aws.String("There is no Spot capacity available that matches your request. <&>"),
				Lifecycle: types.InstanceLifecycleSpot,
				LaunchTemplateAndOverrides: &types.LaunchTemplateAndOverridesResponse{
					LaunchTemplateSpecification: spec,
					Overrides:                   &types.FleetLaunchTemplateOverrides{InstanceType: "m5.large", SubnetId: aws.String("subnet-b")},
				},
			}, {ErrorCode: aws.String("UnauthorizedOperation")}},
		}},
		{name: "empty", out: &ec2.CreateFleetOutput{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := encodeCreateFleet(tt.out, "req-1")
				if err != nil {
					t.Error(err)
				}
				_, _ = w.Write(body)
			}))
			t.Cleanup(srv.Close)
			got, err := ec2.NewFromConfig(testConfig(srv.URL)).CreateFleet(context.Background(), minimalInput(nil))
			if err != nil {
				t.Fatal(err)
			}
			got.ResultMetadata = tt.out.ResultMetadata
			if diff := cmp.Diff(asJSON(t, tt.out), asJSON(t, got)); diff != "" {
				t.Errorf("decoded answer (-encoded +decoded):\n%s", diff)
			}
		})
	}

	_, err := encodeCreateFleet(&ec2.CreateFleetOutput{Instances: []types.CreateFleetInstance{{LaunchTemplateAndOverrides: &types.LaunchTemplateAndOverridesResponse{
		Overrides: &types.FleetLaunchTemplateOverrides{Placement: &types.PlacementResponse{GroupName: aws.String("g")}},
	}}}}, "req-1")
	if err == nil {
		t.Error("an override with a Placement was encoded; want an error (it would be lost)")
	}
}

// TestEC2ErrorDocument: fixtures are errors as ec2world returns them. Each is answered as EC2
// does and decoded by the real SDK client, which must see the code, the message, EC2's status
// for it and the request id.
func TestEC2ErrorDocument(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		code, msg  string
		wantStatus int
	}{
		{name: "throttled", status: 503, code: "RequestLimitExceeded", msg: "Request limit exceeded.", wantStatus: 503},
		{name: "mismatch", status: 400, code: "IdempotentParameterMismatch", msg: `The client token "t" was used before with different parameters.`, wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				writeError(w, &request{http: r, protocol: protoEC2}, tt.status, tt.code, tt.msg)
			}))
			t.Cleanup(srv.Close)
			_, err := ec2.NewFromConfig(testConfig(srv.URL)).CreateFleet(context.Background(), minimalInput(nil))
			checkAPIError(t, err, tt.wantStatus, tt.code, tt.msg)
		})
	}
}

// checkAPIError checks that err is the SDK's error for an HTTP status answer with code and
// message (message "" for any), with a request id.
func checkAPIError(t *testing.T, err error, status int, code, message string) {
	t.Helper()
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != code || (message != "" && api.ErrorMessage() != message) {
		t.Errorf("error %v: want API error %s %q", err, code, message)
	}
	var resp *awshttp.ResponseError
	if !errors.As(err, &resp) || resp.HTTPStatusCode() != status || resp.ServiceRequestID() == "" {
		t.Errorf("error %v: want HTTP %d with a request id", err, status)
	}
}
