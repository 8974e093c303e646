package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the requests made")

var launchedAt = time.Date(2025, 3, 4, 22, 13, 19, 0, time.UTC)

// newTestClient returns a client over f with a fixed clock.
func newTestClient(f *fakeEC2) *Client {
	c := New(f)
	c.now = func() time.Time { return launchedAt }
	return c
}

// request is a preset's launch for job 42: two types, two subnets, a 50 GB disk.
func request(s Strategy) Request {
	return Request{
		ClientToken:      "ghes-example-com-42-a1",
		LaunchTemplateID: "lt-0123456789abcdef0",
		ImageID:          "ami-0aaaaaaaaaaaaaaaa",
		InstanceTypes:    []string{"m7i.large", "m6i.large"},
		SubnetIDs:        []string{"subnet-a", "subnet-b"},
		Strategy:         s,
		DiskSizeGB:       50,
		Tags: map[string]string{
			"spotrunner:job":    "ghes.example.com/42",
			"spotrunner:preset": "linux-x64",
			"spotrunner:host":   "ghes.example.com",
		},
	}
}

// TestLaunchGolden: fixtures are testdata/<case>.golden.json, the CreateFleet inputs (in call order)
// of one launch per strategy and of a cpu=4,ram=16 requirements launch, made against a recording
// fake. The inputs must equal the golden files byte for byte; -update rewrites them. In the
// spotPreferred case the spot fleet answers "no capacity", so both calls are recorded.
func TestLaunchGolden(t *testing.T) {
	t.Parallel()
	reqs := request(SpotOnly)
	reqs.Requirements = &Requirements{MinVCPU: 4, MinMemoryGiB: 16, Architecture: X86_64}
	reqs.DiskSizeGB = 0
	tests := []struct {
		name    string
		req     Request
		answers []answer
	}{
		{name: "spot_only", req: request(SpotOnly)},
		{name: "spot_preferred", req: request(SpotPreferred), answers: []answer{noInstance("InsufficientInstanceCapacity")}},
		{name: "on_demand_only", req: request(OnDemandOnly)},
		{name: "requirements_cpu4_ram16", req: reqs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			f.answers = tt.answers
			if _, err := newTestClient(f).Launch(context.Background(), tt.req); err != nil {
				t.Fatalf("Launch: %v", err)
			}
			got := goldenJSON(t, f.fleets)
			path := filepath.Join("testdata", tt.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("CreateFleet inputs differ from %s (-want +got):\n%s", path, diff)
			}
		})
	}
}

// goldenJSON encodes the SDK inputs without their unset fields (nil pointers and slices, empty
// enums: the SDK sends neither), so the files show only what goes on the wire.
func goldenJSON(t *testing.T, ins []*ec2.CreateFleetInput) []byte {
	t.Helper()
	raw, err := json.Marshal(ins)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(dropUnset(v)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func dropUnset(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e == nil || e == "" {
				delete(v, k)
				continue
			}
			v[k] = dropUnset(e)
		}
	case []any:
		for i, e := range v {
			v[i] = dropUnset(e)
		}
	}
	return v
}

var sentinels = []error{ErrCapacity, ErrThrottled, ErrLaunchConfig, ErrUnauthorized, ErrImageGone, ErrTokenReused, ErrNotOurs}

// checkKind fails unless err wraps exactly the sentinel want (none when want is nil), and the
// sentinels want is a kind of: ErrUnauthorized is also ErrLaunchConfig.
func checkKind(t *testing.T, err, want error) {
	t.Helper()
	for _, s := range sentinels {
		wanted := s == want || s == ErrLaunchConfig && want == ErrUnauthorized
		if got := errors.Is(err, s); got != wanted {
			t.Errorf("errors.Is(err, %q) = %v, want %v; err = %v", s, got, wanted, err)
		}
	}
}

// denied is AWS's message for a pool the caller may not launch, with the pool's own encoded
// authorization message.
func denied(encoded string) string {
	return "You are not authorized to perform this operation. Encoded authorization failure message: " + encoded
}

// imageGone is AWS's message for an AMI that no longer exists, naming the request's AMI.
const imageGone = "The image id '[ami-0aaaaaaaaaaaaaaaa]' does not exist"

// TestLaunchOutcomes: fixtures are scripted CreateFleet answers (fleet Errors arrays, API errors,
// empty answers) for each strategy. Each launch must make exactly the listed calls (capacity type
// and token), return the instance the fleet launched with its capacity type, or an error that
// wraps exactly the expected sentinel and names the codes and messages EC2 gave. A denial must be
// ErrUnauthorized wherever it appears, never fall back to on-demand, and name the missing
// permission; a reused token must be ErrTokenReused, not a configuration error; an AMI that is
// gone (deregistered, disabled) must be ErrImageGone and not a configuration error, name the AMI
// as AWS does, and never fall back to on-demand.
func TestLaunchOutcomes(t *testing.T) {
	t.Parallel()
	const token = "ghes-example-com-42-a1"
	spot := func(id string) Instance {
		return Instance{ID: id, InstanceType: "m7i.large", CapacityType: Spot, SubnetID: "subnet-a", State: "pending", LaunchedAt: launchedAt, Tags: request(SpotOnly).tags()}
	}
	onDemand := func(id string) Instance {
		i := spot(id)
		i.CapacityType = OnDemand
		return i
	}
	withErrors := func(a answer) answer { // an instance launched next to other pools' errors
		ok, _ := newFake().CreateFleet(context.Background(), fleetInput(request(SpotOnly), "spot", token))
		ok.Errors = a.out.Errors
		return answer{out: ok}
	}
	tests := []struct {
		name      string
		strategy  Strategy
		answers   []answer
		wantCalls []string // capacity type + " " + token
		want      Instance
		wantErr   bool
		wantKind  error
		wantText  []string
		wantNot   []string // text the error must not contain
	}{
		{
			name: "spotOnly launches spot", strategy: SpotOnly,
			wantCalls: []string{"spot " + token}, want: spot("i-0001"),
		},
		{
			name: "spotOnly: instance next to other pools' errors is a success", strategy: SpotOnly,
			answers:   []answer{withErrors(noInstance("InsufficientInstanceCapacity"))},
			wantCalls: []string{"spot " + token}, want: spot("i-0001"),
		},
		{
			name: "spotOnly: capacity errors", strategy: SpotOnly,
			answers:   []answer{noInstance("InsufficientInstanceCapacity", "InsufficientInstanceCapacity", "MaxSpotInstanceCountExceeded")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrCapacity,
			wantText: []string{"fleet-failed", "InsufficientInstanceCapacity: message for InsufficientInstanceCapacity (2 pools)", "MaxSpotInstanceCountExceeded: message for MaxSpotInstanceCountExceeded"},
		},
		{
			name: "spotOnly: unsupported pools next to capacity errors are capacity", strategy: SpotOnly,
			answers:   []answer{noInstance("Unsupported", "UnfulfillableCapacity", "SpotMaxPriceTooLow")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrCapacity,
		},
		{
			name: "spotOnly: only unsupported pools is configuration", strategy: SpotOnly,
			answers:   []answer{noInstance("Unsupported", "Unsupported")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrLaunchConfig,
		},
		{
			name: "spotOnly: throttled in the Errors array", strategy: SpotOnly,
			answers:   []answer{noInstance("InsufficientInstanceCapacity", "RequestLimitExceeded")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrThrottled, wantText: []string{"RequestLimitExceeded"},
		},
		{
			name: "spotOnly: throttled as an API error", strategy: SpotOnly,
			answers:   []answer{{err: apiError("RequestLimitExceeded", "Request limit exceeded.")}},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrThrottled, wantText: []string{"RequestLimitExceeded", token},
		},
		{
			name: "spotOnly: launch template missing", strategy: SpotOnly,
			answers:   []answer{noInstance("InvalidLaunchTemplateId.NotFound")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrLaunchConfig, wantText: []string{"InvalidLaunchTemplateId.NotFound"},
		},
		{
			name: "spotOnly: configuration error next to capacity errors", strategy: SpotOnly,
			answers:   []answer{noInstance("InsufficientInstanceCapacity", "InvalidSubnetID.NotFound")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrLaunchConfig,
		},
		{
			name: "spotOnly: AMI rejected as an API error", strategy: SpotOnly,
			answers:   []answer{{err: apiError("InvalidAMIID.Malformed", "Invalid id: ami-x")}},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrLaunchConfig,
		},
		{
			name: "spotOnly: AMI gone in every pool", strategy: SpotOnly,
			answers:   []answer{noInstanceMessages("InvalidAMIID.NotFound", imageGone, imageGone, imageGone, imageGone)},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrImageGone,
			wantText: []string{"InvalidAMIID.NotFound: " + imageGone + " (4 pools)", "AMI deregistered or disabled"},
		},
		{
			name: "spotOnly: AMI unavailable (disabled) in every pool", strategy: SpotOnly,
			answers:   []answer{noInstanceMessages("InvalidAMIID.Unavailable", "The image id '[ami-0aaaaaaaaaaaaaaaa]' is no longer available")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrImageGone, wantText: []string{"ami-0aaaaaaaaaaaaaaaa"},
		},
		{
			name: "spotOnly: AMI gone as an API error", strategy: SpotOnly,
			answers:   []answer{{err: apiError("InvalidAMIID.NotFound", imageGone)}},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrImageGone, wantText: []string{token, "ami-0aaaaaaaaaaaaaaaa"},
		},
		{
			name: "spotOnly: AMI gone with CloudTrail's prefix", strategy: SpotOnly,
			answers:   []answer{{err: apiError("Client.InvalidAMIID.Unavailable", "The image id '[ami-0aaaaaaaaaaaaaaaa]' is no longer available")}},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrImageGone,
		},
		{
			name: "spotOnly: AMI gone next to capacity errors is a gone AMI", strategy: SpotOnly,
			answers:   []answer{noInstance("InsufficientInstanceCapacity", "InvalidAMIID.NotFound", "Unsupported")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrImageGone,
		},
		{
			name: "spotOnly: AMI gone next to a configuration error is configuration", strategy: SpotOnly,
			answers:   []answer{noInstance("InvalidAMIID.NotFound", "InvalidSubnetID.NotFound")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrLaunchConfig,
		},
		{
			name: "spotOnly: AMI gone next to a denial is a denial", strategy: SpotOnly,
			answers:   []answer{noInstance("InvalidAMIID.NotFound", "UnauthorizedOperation")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrUnauthorized,
		},
		{
			name: "spotOnly: CreateFleet denied as an API error", strategy: SpotOnly,
			answers:   []answer{{err: apiError("UnauthorizedOperation", denied("api-encoded"))}},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrUnauthorized,
			wantText: []string{"UnauthorizedOperation", "api-encoded", "missing permission: ec2:CreateFleet on arn:aws:ec2:<region>:<account>:fleet/*", "docs/provisioning.md#iam-for-launches"},
		},
		{
			name: "spotOnly: the denial AWS names is the missing permission", strategy: SpotOnly,
			answers: []answer{{err: apiError("UnauthorizedOperation", "You are not authorized to perform this operation. "+
				"User: arn:aws:sts::123456789012:assumed-role/provisioner/x is not authorized to perform: ec2:CreateFleet "+
				"on resource: arn:aws:ec2:eu-west-1:123456789012:launch-template/lt-1 because no identity-based policy allows "+
				"the ec2:CreateFleet action. Encoded authorization failure message: xyz")}},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrUnauthorized,
			wantText: []string{"missing permission: ec2:CreateFleet on arn:aws:ec2:eu-west-1:123456789012:launch-template/lt-1;"},
		},
		{
			name: "spotOnly: spot launches denied in the Errors array are not capacity", strategy: SpotOnly,
			answers:   []answer{noInstanceMessages("UnauthorizedOperation", denied("pool-1"), denied("pool-2"), denied("pool-3"), denied("pool-4"))},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrUnauthorized,
			wantText: []string{"UnauthorizedOperation: " + denied("pool-1") + " (4 pools)",
				"missing permission: ec2:RunInstances on arn:aws:ec2:<region>:<account>:spot-instances-request/* (spot launches)"},
			wantNot: []string{"pool-2"},
		},
		{
			name: "spotOnly: a denial next to capacity errors is a denial", strategy: SpotOnly,
			answers:   []answer{noInstance("InsufficientInstanceCapacity", "UnauthorizedOperation", "InsufficientInstanceCapacity")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrUnauthorized,
		},
		{
			name: "spotOnly: a denial next to throttling is a denial", strategy: SpotOnly,
			answers:   []answer{noInstance("RequestLimitExceeded", "Client.UnauthorizedOperation")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrUnauthorized,
		},
		{
			name: "spotOnly: no spot service-linked role", strategy: SpotOnly,
			answers:   []answer{noInstance("AuthFailure.ServiceLinkedRoleCreationNotPermitted")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrUnauthorized,
			wantText: []string{"missing permission: iam:CreateServiceLinkedRole for spot.amazonaws.com"},
		},
		{
			name: "spotOnly: token reused with another request", strategy: SpotOnly,
			answers:   []answer{{err: apiError("IdempotentParameterMismatch", "The client token was used before with different parameters.")}},
			wantCalls: []string{"spot " + token}, wantErr: true, wantKind: ErrTokenReused, wantText: []string{"IdempotentParameterMismatch", token},
		},
		{
			name: "spotOnly: unknown codes are unclassified", strategy: SpotOnly,
			answers:   []answer{noInstance("InsufficientInstanceCapacity", "SomethingNew")},
			wantCalls: []string{"spot " + token}, wantErr: true, wantText: []string{"SomethingNew"},
		},
		{
			name: "spotOnly: no instance and no error", strategy: SpotOnly,
			answers:   []answer{{out: &ec2.CreateFleetOutput{}}},
			wantCalls: []string{"spot " + token}, wantErr: true, wantText: []string{"no instance and reported no error"},
		},
		{
			name: "spotPreferred: spot launches, no fallback", strategy: SpotPreferred,
			wantCalls: []string{"spot " + token + "-spot"}, want: spot("i-0001"),
		},
		{
			name: "spotPreferred: spot capacity falls back to on-demand", strategy: SpotPreferred,
			answers:   []answer{noInstance("InsufficientInstanceCapacity")},
			wantCalls: []string{"spot " + token + "-spot", "on-demand " + token + "-od"}, want: onDemand("i-0001"),
		},
		{
			name: "spotPreferred: an empty spot answer falls back", strategy: SpotPreferred,
			answers:   []answer{{out: &ec2.CreateFleetOutput{}}},
			wantCalls: []string{"spot " + token + "-spot", "on-demand " + token + "-od"}, want: onDemand("i-0001"),
		},
		{
			name: "spotPreferred: a spot-only configuration error falls back", strategy: SpotPreferred,
			answers:   []answer{noInstance("InvalidParameterValue")},
			wantCalls: []string{"spot " + token + "-spot", "on-demand " + token + "-od"}, want: onDemand("i-0001"),
		},
		{
			name: "spotPreferred: both without capacity", strategy: SpotPreferred,
			answers:   []answer{noInstance("InsufficientInstanceCapacity"), noInstance("InsufficientInstanceCapacity")},
			wantCalls: []string{"spot " + token + "-spot", "on-demand " + token + "-od"}, wantErr: true, wantKind: ErrCapacity,
			wantText: []string{`create spot fleet "` + token + `-spot"`, `create on-demand fleet "` + token + `-od"`},
		},
		{
			name: "spotPreferred: on-demand's error decides", strategy: SpotPreferred,
			answers:   []answer{noInstance("InsufficientInstanceCapacity"), noInstance("VcpuLimitExceeded", "InvalidGroup.NotFound")},
			wantCalls: []string{"spot " + token + "-spot", "on-demand " + token + "-od"}, wantErr: true, wantKind: ErrLaunchConfig,
		},
		{
			name: "spotPreferred: throttled spot does not fall back", strategy: SpotPreferred,
			answers:   []answer{{err: apiError("RequestLimitExceeded", "Request limit exceeded.")}},
			wantCalls: []string{"spot " + token + "-spot"}, wantErr: true, wantKind: ErrThrottled,
		},
		{
			name: "spotPreferred: throttled in spot's Errors does not fall back", strategy: SpotPreferred,
			answers:   []answer{noInstance("RequestLimitExceeded")},
			wantCalls: []string{"spot " + token + "-spot"}, wantErr: true, wantKind: ErrThrottled,
		},
		{
			name: "spotPreferred: a spot API error does not fall back", strategy: SpotPreferred,
			answers:   []answer{{err: apiError("InternalError", "An internal error has occurred")}},
			wantCalls: []string{"spot " + token + "-spot"}, wantErr: true, wantText: []string{"InternalError"},
		},
		{
			name: "spotPreferred: spot denied does not fall back", strategy: SpotPreferred,
			answers:   []answer{noInstance("UnauthorizedOperation", "UnauthorizedOperation")},
			wantCalls: []string{"spot " + token + "-spot"}, wantErr: true, wantKind: ErrUnauthorized,
			wantText: []string{"spot-instances-request/*"},
		},
		{
			name: "spotPreferred: spot denied for some pools does not fall back", strategy: SpotPreferred,
			answers:   []answer{noInstance("InsufficientInstanceCapacity", "UnauthorizedOperation")},
			wantCalls: []string{"spot " + token + "-spot"}, wantErr: true, wantKind: ErrUnauthorized,
		},
		{
			name: "spotPreferred: spot service-linked role missing does not fall back", strategy: SpotPreferred,
			answers:   []answer{noInstance("AuthFailure.ServiceLinkedRoleCreationNotPermitted")},
			wantCalls: []string{"spot " + token + "-spot"}, wantErr: true, wantKind: ErrUnauthorized,
		},
		{
			name: "spotPreferred: on-demand denied after spot capacity", strategy: SpotPreferred,
			answers:   []answer{noInstance("InsufficientInstanceCapacity"), noInstance("UnauthorizedOperation")},
			wantCalls: []string{"spot " + token + "-spot", "on-demand " + token + "-od"}, wantErr: true, wantKind: ErrUnauthorized,
			wantText: []string{"iam:PassRole on the runner instance role"},
		},
		{
			name: "spotPreferred: AMI gone for spot does not fall back", strategy: SpotPreferred,
			answers:   []answer{noInstanceMessages("InvalidAMIID.NotFound", imageGone, imageGone)},
			wantCalls: []string{"spot " + token + "-spot"}, wantErr: true, wantKind: ErrImageGone, wantText: []string{"ami-0aaaaaaaaaaaaaaaa"},
		},
		{
			name: "spotPreferred: AMI gone as a spot API error does not fall back", strategy: SpotPreferred,
			answers:   []answer{{err: apiError("InvalidAMIID.NotFound", imageGone)}},
			wantCalls: []string{"spot " + token + "-spot"}, wantErr: true, wantKind: ErrImageGone,
		},
		{
			name: "spotPreferred: AMI gone on-demand after spot capacity", strategy: SpotPreferred,
			answers:   []answer{noInstance("InsufficientInstanceCapacity"), noInstanceMessages("InvalidAMIID.NotFound", imageGone)},
			wantCalls: []string{"spot " + token + "-spot", "on-demand " + token + "-od"}, wantErr: true, wantKind: ErrImageGone,
		},
		{
			name: "spotPreferred: a reused spot token does not fall back", strategy: SpotPreferred,
			answers:   []answer{{err: apiError("IdempotentParameterMismatch", "The client token was used before with different parameters.")}},
			wantCalls: []string{"spot " + token + "-spot"}, wantErr: true, wantKind: ErrTokenReused,
		},
		{
			name: "onDemandOnly launches on-demand", strategy: OnDemandOnly,
			wantCalls: []string{"on-demand " + token}, want: onDemand("i-0001"),
		},
		{
			name: "onDemandOnly: capacity errors", strategy: OnDemandOnly,
			answers:   []answer{noInstance("InsufficientInstanceCapacity")},
			wantCalls: []string{"on-demand " + token}, wantErr: true, wantKind: ErrCapacity,
		},
		{
			name: "onDemandOnly: throttled", strategy: OnDemandOnly,
			answers:   []answer{{err: apiError("RequestLimitExceeded", "Request limit exceeded.")}},
			wantCalls: []string{"on-demand " + token}, wantErr: true, wantKind: ErrThrottled,
		},
		{
			name: "onDemandOnly: denied in the Errors array", strategy: OnDemandOnly,
			answers:   []answer{noInstance("UnauthorizedOperation")},
			wantCalls: []string{"on-demand " + token}, wantErr: true, wantKind: ErrUnauthorized,
			wantText: []string{"ec2:RunInstances on the launch template", "iam:PassRole on the runner instance role"},
			wantNot:  []string{"spot-instances-request"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			f.answers = tt.answers
			got, err := newTestClient(f).Launch(context.Background(), request(tt.strategy))
			var calls []string
			for _, in := range f.fleets {
				calls = append(calls, string(in.TargetCapacitySpecification.DefaultTargetCapacityType)+" "+*in.ClientToken)
			}
			if diff := cmp.Diff(tt.wantCalls, calls); diff != "" {
				t.Errorf("CreateFleet calls (-want +got):\n%s", diff)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("Launch() error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				checkKind(t, err, tt.wantKind)
				for _, s := range tt.wantText {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %q", err, s)
					}
				}
				for _, s := range tt.wantNot {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q names %q", err, s)
					}
				}
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Launch() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLaunchRejectsBadRequests: fixtures are requests missing a required field or with an invalid
// one. Each must fail with ErrLaunchConfig before any call to EC2.
func TestLaunchRejectsBadRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Request)
	}{
		{"no token", func(r *Request) { r.ClientToken = "" }},
		{"token too long with its suffix", func(r *Request) { r.Strategy = SpotPreferred; r.ClientToken = strings.Repeat("t", 60) }},
		{"no launch template", func(r *Request) { r.LaunchTemplateID = "" }},
		{"no subnet", func(r *Request) { r.SubnetIDs = nil }},
		{"no instance types", func(r *Request) { r.InstanceTypes = nil }},
		{"unknown strategy", func(r *Request) { r.Strategy = "cheapest" }},
		{"requirements without architecture", func(r *Request) { r.Requirements = &Requirements{MinVCPU: 4} }},
		{"requirements on an unknown architecture", func(r *Request) { r.Requirements = &Requirements{MinVCPU: 4, Architecture: "riscv64"} }},
		{"negative requirements", func(r *Request) { r.Requirements = &Requirements{MinVCPU: -1, Architecture: ARM64} }},
		{"negative disk", func(r *Request) { r.DiskSizeGB = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := request(SpotOnly)
			tt.change(&r)
			f := newFake()
			_, err := newTestClient(f).Launch(context.Background(), r)
			checkKind(t, err, ErrLaunchConfig)
			if len(f.fleets) != 0 {
				t.Errorf("%d CreateFleet calls for an invalid request, want 0", len(f.fleets))
			}
		})
	}
}

// TestLaunchTagsAndRequirements: fixtures are a request whose tags try to unset the managed marker,
// and an arm64 requirements request without types. The marker must be "true" on the instance and
// volume tag specifications, the returned tags must carry it, the caller's map must be left alone,
// and each subnet must get one requirements override restricted to Graviton CPUs.
func TestLaunchTagsAndRequirements(t *testing.T) {
	t.Parallel()
	r := request(SpotOnly)
	r.Tags = map[string]string{ManagedTag: "false", "spotrunner:job": "ghes.example.com/7"}
	r.InstanceTypes = nil
	r.Requirements = &Requirements{MinVCPU: 2, Architecture: ARM64}
	f := newFake()
	got, err := newTestClient(f).Launch(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	wantTags := map[string]string{ManagedTag: "true", "spotrunner:job": "ghes.example.com/7"}
	if diff := cmp.Diff(wantTags, got.Tags); diff != "" {
		t.Errorf("instance tags (-want +got):\n%s", diff)
	}
	if r.Tags[ManagedTag] != "false" {
		t.Errorf("Launch changed the caller's tags: %v", r.Tags)
	}
	in := f.fleets[0]
	for _, ts := range in.TagSpecifications {
		tags := map[string]string{}
		for _, tg := range ts.Tags {
			tags[*tg.Key] = *tg.Value
		}
		if diff := cmp.Diff(wantTags, tags); diff != "" {
			t.Errorf("%s tag specification (-want +got):\n%s", ts.ResourceType, diff)
		}
	}
	var pools []string
	for _, o := range in.LaunchTemplateConfigs[0].Overrides {
		q := o.InstanceRequirements
		pools = append(pools, fmt.Sprintf("%s %q vcpu>=%d mib>=%d %v", *o.SubnetId, o.InstanceType, *q.VCpuCount.Min, *q.MemoryMiB.Min, q.CpuManufacturers))
	}
	want := []string{`subnet-a "" vcpu>=2 mib>=0 [amazon-web-services]`, `subnet-b "" vcpu>=2 mib>=0 [amazon-web-services]`}
	if diff := cmp.Diff(want, pools); diff != "" {
		t.Errorf("overrides (-want +got):\n%s", diff)
	}
}
