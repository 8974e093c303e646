// Package fleet launches, finds and terminates runner instances with EC2 Fleet, and speaks the
// project's types: EC2 SDK structs stop here.
//
// Launch starts exactly one instance with an instant fleet (Type=instant) and a ClientToken the
// caller derives from the job, so a retry after a crash gets the same instance back instead of a
// second one. It reads the fleet's Errors array, because an instant fleet answers HTTP 200 with zero
// instances when no pool could fill it, and maps EC2's error codes to the sentinel errors below,
// which the provisioner classifies (transient, operator-fixable, user error) in one place.
//
// Every fleet, instance and volume Launch creates carries ManagedTag=true (the stack's IAM policy
// allows launches only with it); Terminate refuses any instance without it, so nothing this
// package does can touch an instance we did not launch. Lookup reads one instance by id.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// ManagedTag marks a fleet, instance or volume as launched by spotrunner; its value is "true".
const ManagedTag = "spotrunner:managed"

// DeploymentTag names the stack that launched an instance: a reaper touches only its own.
const DeploymentTag = "spotrunner:deployment"

// JITParameterPrefix is where a deployment's JIT configs wait for their instances:
// /spotrunner/<deployment>/jit/<instance id>. An instance's bootstrap builds the same name from its
// DeploymentTag, and its role may read only the parameter tagged with its own ARN.
func JITParameterPrefix(deployment string) string { return "/spotrunner/" + deployment + "/jit/" }

// Sentinel errors. Launch, Find, Lookup and Terminate wrap them; test with errors.Is.
var (
	// ErrCapacity: EC2 had no capacity for any of the request's pools (every error code the fleet
	// returned is a capacity or quota one). Transient: retry later, with a new ClientToken.
	ErrCapacity = errors.New("no capacity")
	// ErrThrottled: EC2 throttled the call (RequestLimitExceeded), after the SDK's own retries.
	// Transient: back off and retry.
	ErrThrottled = errors.New("throttled by EC2")
	// ErrLaunchConfig: EC2 rejected the request itself (launch template, AMI, subnet, parameters,
	// permissions), or the Request is invalid. Retrying the same request cannot succeed; an operator
	// has to fix the preset or the stack.
	ErrLaunchConfig = errors.New("launch configuration rejected")
	// ErrUnauthorized: IAM denied the launch (UnauthorizedOperation, AuthFailure...), whether
	// CreateFleet answered with it or the fleet reported it in its Errors for any of its pools.
	// Operator-fixable: the function's role lacks a permission, which the error names. It is a
	// kind of ErrLaunchConfig (errors.Is matches both), so code that only knows ErrLaunchConfig
	// still treats it as the operator's; test ErrUnauthorized first to tell it apart. It never
	// counts as no capacity, and SpotPreferred never falls back to on-demand because of it.
	ErrUnauthorized = fmt.Errorf("%w: not authorized by IAM", ErrLaunchConfig)
	// ErrImageGone: the request's AMI was deregistered (by hand, or by Image Builder's lifecycle
	// policy) or disabled, or is not in a state it can launch from (InvalidAMIID.NotFound,
	// InvalidAMIID.Unavailable), whether CreateFleet answered with it or the fleet reported it in
	// its Errors. Not a kind of ErrLaunchConfig: the preset is fine, only its AMI is not; the caller
	// forgets the AMI and launches from another one. SpotPreferred never falls back to on-demand
	// because of it (the on-demand fleet would send the same AMI). A malformed AMI id
	// (InvalidAMIID.Malformed) stays ErrLaunchConfig.
	ErrImageGone = errors.New("AMI deregistered or disabled")
	// ErrTokenReused: EC2 refused the ClientToken because it came with a request that differs
	// from the one it was first sent with (IdempotentParameterMismatch), e.g. a retry after the
	// preset's AMI or types changed. Not a configuration error: the caller finds the instance of
	// the token's first request, or moves on to a new token.
	ErrTokenReused = errors.New("client token already used with another request")
	// ErrNotOurs: Terminate was asked to terminate an instance without ManagedTag=true.
	ErrNotOurs = errors.New("instance not managed by spotrunner")
)

// EC2 is the part of the EC2 client the package uses.
type EC2 interface {
	CreateFleet(ctx context.Context, in *ec2.CreateFleetInput, optFns ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, optFns ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
}

// Strategy is how a launch buys capacity.
type Strategy string

// Strategies, as presets name them.
const (
	// SpotOnly launches spot or nothing (ErrCapacity): the cheapest, for jobs that can wait.
	SpotOnly Strategy = "spotOnly"
	// SpotPreferred tries spot first and falls back to on-demand when spot has no instance.
	SpotPreferred Strategy = "spotPreferred"
	// OnDemandOnly never uses spot: for jobs that must not be interrupted.
	OnDemandOnly Strategy = "onDemandOnly"
)

// Capacity types, as Instance.CapacityType reports them.
const (
	Spot     = "spot"
	OnDemand = "on-demand"
)

// Requirements selects instance types by attributes (EC2 attribute-based instance type selection)
// instead of the preset's list.
type Requirements struct {
	// MinVCPU is the minimum number of vCPUs; 0 means no minimum.
	MinVCPU int
	// MinMemoryGiB is the minimum memory in GiB; 0 means no minimum.
	MinMemoryGiB int
	// Architecture is required: "x86_64" or "arm64". EC2 Fleet's InstanceRequirements has no
	// architecture attribute: EC2 only picks types that can run the AMI, so the AMI (Request.ImageID,
	// or the launch template's) is what decides. Architecture must match it; Launch also restricts
	// the CPU manufacturers to that architecture's, so a mismatched AMI fails the launch instead of
	// silently running on the other architecture.
	Architecture string
}

// Architectures Requirements accepts.
const (
	X86_64 = "x86_64"
	ARM64  = "arm64"
)

// Request is one runner launch.
type Request struct {
	// ClientToken is required, at most 64 characters (59 for SpotPreferred, which appends "-spot"
	// and "-od"). Derived from the job by the caller: the same token gives the same instance back
	// (AWS idempotency). AWS also replays a token's first answer when that answer was "no
	// instance", so a retry after ErrCapacity needs a new token (e.g. the job plus an attempt number).
	ClientToken string
	// LaunchTemplateID is required. Its default version is used ("$Default"), see launchTemplateVersion.
	LaunchTemplateID string
	// ImageID is optional; when set it overrides the template's AMI (the preset's usable AMI).
	ImageID string
	// InstanceTypes are the preset's types; required unless Requirements is set, ignored when it is.
	InstanceTypes []string
	// Requirements is optional; when set, EC2 picks the instance type by attributes.
	Requirements *Requirements
	// SubnetIDs is required (at least one). The fleet's pools are the instance types (or the one
	// requirements block) × every subnet.
	SubnetIDs []string
	// Strategy is required.
	Strategy Strategy
	// DiskSizeGB is optional; when > 0 the root volume (RootDevice) is that size, gp3, encrypted.
	// Otherwise the launch template's root volume is used as it is.
	DiskSizeGB int
	// Tags are put on the fleet, the instance and its volumes. Optional; ManagedTag=true is always
	// added.
	Tags map[string]string
}

// Instance is one runner instance.
type Instance struct {
	ID           string
	InstanceType string
	// CapacityType is "spot" or "on-demand".
	CapacityType string
	SubnetID     string
	// State is EC2's state name: "pending", "running", "shutting-down", ... Launch reports "pending".
	State string
	// LaunchedAt is EC2's launch time; for an instance returned by Launch, the time Launch returned
	// it (CreateFleet does not report one, and asking right away is eventually consistent).
	LaunchedAt time.Time
	Tags       map[string]string
}

// Client launches, finds and terminates runner instances. Safe for concurrent use.
type Client struct {
	api EC2
	now func() time.Time
}

// New returns a client over api.
func New(api EC2) *Client { return &Client{api: api, now: time.Now} }

// Launch starts exactly one instance for r.
//
//   - SpotOnly: one instant fleet, spot, price-capacity-optimized.
//   - OnDemandOnly: one instant fleet, on-demand, lowest-price.
//   - SpotPreferred: the spot fleet first (token+"-spot"); only when it definitively launched no
//     instance (HTTP 200, zero instances) and not because of throttling, a denial or a gone AMI,
//     an on-demand fleet (token+"-od"). An API error on the spot call never falls back: the spot
//     fleet may exist, and a retry with the same token finds out. A denial never falls back
//     either: a role that may not launch spot must fail the first job, not pay on-demand prices
//     for every job after it. Nor does a gone AMI: the on-demand fleet would send the same one.
//
// Zero instances is always an error, wrapping ErrCapacity, ErrThrottled, ErrLaunchConfig,
// ErrUnauthorized or ErrImageGone as the fleet's error codes say (or none of them for unknown
// codes, or no Errors at all). An authorization failure names the permission it most likely lacks.
func (c *Client) Launch(ctx context.Context, r Request) (Instance, error) {
	if err := r.validate(); err != nil {
		return Instance{}, fmt.Errorf("launch %q: %w", r.ClientToken, err)
	}
	switch r.Strategy {
	case SpotOnly:
		return c.launch(ctx, r, types.DefaultTargetCapacityTypeSpot, r.ClientToken)
	case OnDemandOnly:
		return c.launch(ctx, r, types.DefaultTargetCapacityTypeOnDemand, r.ClientToken)
	}
	inst, spotErr := c.launch(ctx, r, types.DefaultTargetCapacityTypeSpot, r.ClientToken+"-spot")
	var none *noInstanceError
	if spotErr == nil || !errors.As(spotErr, &none) || errors.Is(spotErr, ErrThrottled) || errors.Is(spotErr, ErrUnauthorized) || errors.Is(spotErr, ErrImageGone) {
		return inst, spotErr
	}
	inst, err := c.launch(ctx, r, types.DefaultTargetCapacityTypeOnDemand, r.ClientToken+"-od")
	if err != nil {
		return Instance{}, fmt.Errorf("%v; fallback: %w", spotErr, err)
	}
	return inst, nil
}

// launch makes one CreateFleet call and turns its answer into an Instance or an error.
func (c *Client) launch(ctx context.Context, r Request, capacity types.DefaultTargetCapacityType, token string) (Instance, error) {
	out, err := c.api.CreateFleet(ctx, fleetInput(r, capacity, token))
	if err != nil {
		err = classified(fmt.Errorf("create %s fleet %q: %w", capacity, token, err))
		var api smithy.APIError
		if errors.Is(err, ErrUnauthorized) && errors.As(err, &api) {
			err = fmt.Errorf("%w; missing permission: %s; see %s", err, missingPermission(api.ErrorCode(), api.ErrorMessage(), capacity, false), iamDoc)
		}
		return Instance{}, err
	}
	if out == nil {
		out = &ec2.CreateFleetOutput{}
	}
	for _, fi := range out.Instances {
		if len(fi.InstanceIds) == 0 {
			continue
		}
		// With a target capacity of 1 there is one instance. Errors next to it are other pools
		// that failed first (AWS reports them even when a later pool succeeded), not a failure.
		return launched(fi, capacity, c.now(), r.tags()), nil
	}
	return Instance{}, fmt.Errorf("create %s fleet %q: %w", capacity, token, newNoInstanceError(out, capacity))
}

// launched converts the fleet's answer for an instance it launched.
func launched(fi types.CreateFleetInstance, capacity types.DefaultTargetCapacityType, now time.Time, tags map[string]string) Instance {
	inst := Instance{
		ID:           fi.InstanceIds[0],
		InstanceType: string(fi.InstanceType),
		CapacityType: string(capacity),
		State:        string(types.InstanceStateNamePending),
		LaunchedAt:   now,
		Tags:         tags,
	}
	if fi.Lifecycle != "" {
		inst.CapacityType = capacityType(string(fi.Lifecycle))
	}
	switch {
	case fi.SubnetId != nil:
		inst.SubnetID = *fi.SubnetId
	case fi.LaunchTemplateAndOverrides != nil && fi.LaunchTemplateAndOverrides.Overrides != nil && fi.LaunchTemplateAndOverrides.Overrides.SubnetId != nil:
		inst.SubnetID = *fi.LaunchTemplateAndOverrides.Overrides.SubnetId
	}
	return inst
}

// capacityType maps EC2's lifecycle ("spot", absent for on-demand in DescribeInstances,
// "on-demand" in CreateFleet) to ours. Anything but spot is paid at the on-demand rate.
func capacityType(lifecycle string) string {
	if lifecycle == Spot {
		return Spot
	}
	return OnDemand
}
