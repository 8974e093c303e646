// Package ec2world is the layer in front of moto's EC2 that gives it AWS's behaviour where moto
// (5.2) falls short, so that tests of the provisioner and the reaper exercise the cases AWS
// produces instead of skipping them. EC2 wraps a real *ec2.Client talking to moto and:
//
//  1. records every call made through it (Calls), for counting API calls;
//  2. injects API errors moto cannot produce, per operation (FailCall): throttling, outages;
//  3. makes CreateFleet idempotent on its ClientToken, as AWS does and moto does not: the first
//     answer for a token is returned for every later call with it, without asking moto again
//     (and IdempotentParameterMismatch when a later call changes the request);
//  4. injects fleet errors moto never returns (FailFleet): an HTTP 200 answer with zero instances
//     and the given code in its Errors array, as AWS answers when no pool has capacity, or when
//     IAM denies the launches an instant fleet makes with the caller's permissions
//     (UnauthorizedOperation: moto enforces no IAM);
//  5. turns InstanceRequirements overrides (attribute-based selection, on which moto fails with
//     HTTP 500 when the launch template names no instance type) into the instance type AWS would
//     pick: the smallest type of a built-in catalogue that meets the requirements and runs the AMI;
//  6. refuses to launch from a deregistered AMI, as AWS does and moto does not (moto launches
//     from it; only DescribeImages shows it gone, answering its id with no image): a fleet whose
//     overrides name one answers HTTP 200, zero instances and InvalidAMIID.NotFound per pool.
//     An id moto never knew is left to moto, which launches from it.
//
// Setup creates in moto what a launch needs (VPC, subnets, security group, AMIs, launch template);
// CopyImage registers a fresh AMI that a test may deregister.
// The package is for tests only, but an ordinary package, so that any package's tests can use it.
package ec2world

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// Operation names, as Calls reports them and FailCall takes them.
const (
	CreateFleet        = "CreateFleet"
	DescribeInstances  = "DescribeInstances"
	TerminateInstances = "TerminateInstances"
)

// EC2 wraps the real client. Safe for concurrent use.
type EC2 struct {
	inner *ec2.Client
	// own is inner without the caller's middleware (API-call counters): the layer's own reads
	// (DescribeImages) are the emulation's, not calls of the code under test.
	own *ec2.Client

	mu          sync.Mutex
	calls       []string
	callFaults  []callFault
	fleetFaults []fleetFault
	tokens      map[string]*tokenState
	archs       map[string]string // AMI id -> architecture, as moto knows it
}

type callFault struct {
	op   string
	left int
	err  error
}

type fleetFault struct {
	capacityType  string // "" for any
	left          int
	code, message string
}

// tokenState is what AWS remembers of a ClientToken: the request and the first answer. Its lock
// makes concurrent calls with one token wait for the first, so they launch once, as on AWS.
type tokenState struct {
	mu      sync.Mutex
	done    bool
	request string
	out     *ec2.CreateFleetOutput
}

// New returns the layer in front of inner.
func New(inner *ec2.Client) *EC2 {
	opts := inner.Options()
	opts.APIOptions = nil
	return &EC2{inner: inner, own: ec2.New(opts), tokens: map[string]*tokenState{}, archs: map[string]string{}}
}

// APIError is an error as the SDK returns it for an EC2 error code, e.g.
// APIError("RequestLimitExceeded", "Request limit exceeded.") for throttling.
func APIError(code, message string) error {
	return &smithy.GenericAPIError{Code: code, Message: message, Fault: smithy.FaultClient}
}

// FailCall makes the next n calls of op (CreateFleet, DescribeInstances, TerminateInstances) fail
// with err before they reach moto or change anything, wrapped as the SDK wraps an operation's
// errors. The layer sits in front of the SDK client, so the caller sees err as it would after the
// SDK's own retries gave up. Faults queue up: a second FailCall for op applies after the first is
// used up.
func (e *EC2) FailCall(op string, n int, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.callFaults = append(e.callFaults, callFault{op: op, left: n, err: err})
}

// FailFleet makes the next n CreateFleet calls of capacityType ("spot", "on-demand", or "" for any)
// answer as AWS does when no pool can launch: HTTP 200, a fleet id, zero instances, and one error
// per pool with code and message, e.g. FailFleet(1, "spot", "UnauthorizedOperation", "You are not
// authorized to perform this operation. Encoded authorization failure message: ...") for a role
// that may launch on-demand but not spot. The answer is remembered for the call's ClientToken
// like any other. A call replaying a known token does not use up a fault.
func (e *EC2) FailFleet(n int, capacityType, code, message string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fleetFaults = append(e.fleetFaults, fleetFault{capacityType: capacityType, left: n, code: code, message: message})
}

// Calls returns every call made through e, in order, e.g. ["CreateFleet", "DescribeInstances"],
// including failed and replayed ones. Calls e makes itself (DescribeImages) are not listed.
func (e *EC2) Calls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.calls...)
}

// begin records a call of op and returns the error injected for it, if any.
func (e *EC2) begin(op string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, op)
	for i := range e.callFaults {
		if f := &e.callFaults[i]; f.op == op && f.left > 0 {
			f.left--
			return &smithy.OperationError{ServiceID: "EC2", OperationName: op, Err: f.err}
		}
	}
	return nil
}

// CreateFleet is EC2's CreateFleet with AWS's token idempotency, fleet faults and
// attribute-based instance type selection.
func (e *EC2) CreateFleet(ctx context.Context, in *ec2.CreateFleetInput, optFns ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error) {
	if err := e.begin(CreateFleet); err != nil {
		return nil, err
	}
	token := aws.ToString(in.ClientToken)
	if token == "" {
		return e.createFleet(ctx, in, optFns)
	}
	request, err := fingerprint(in)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	st := e.tokens[token]
	if st == nil {
		st = &tokenState{}
		e.tokens[token] = st
	}
	e.mu.Unlock()

	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		if st.request != request {
			return nil, &smithy.OperationError{ServiceID: "EC2", OperationName: CreateFleet, Err: APIError(
				"IdempotentParameterMismatch",
				fmt.Sprintf("The client token %q was used before with different parameters.", token))}
		}
		out := *st.out
		return &out, nil
	}
	out, err := e.createFleet(ctx, in, optFns)
	if err != nil {
		return nil, err // AWS remembers no failed request: a retry may succeed
	}
	st.done, st.request, st.out = true, request, out
	cp := *out
	return &cp, nil
}

// fingerprint is the request as AWS compares it for idempotency: everything but the token.
func fingerprint(in *ec2.CreateFleetInput) (string, error) {
	cp := *in
	cp.ClientToken = nil
	b, err := json.Marshal(cp)
	if err != nil {
		return "", fmt.Errorf("ec2world: encode CreateFleet request: %w", err)
	}
	return string(b), nil
}

// createFleet answers a request AWS has not seen: with an injected fleet fault, AWS's refusal of a
// deregistered AMI, or from moto.
func (e *EC2) createFleet(ctx context.Context, in *ec2.CreateFleetInput, optFns []func(*ec2.Options)) (*ec2.CreateFleetOutput, error) {
	capacity := ""
	if in.TargetCapacitySpecification != nil {
		capacity = string(in.TargetCapacitySpecification.DefaultTargetCapacityType)
	}
	if f, ok := e.takeFleetFault(capacity); ok {
		return failedFleet(in, capacity, f), nil
	}
	gone, err := e.deregisteredImage(ctx, in)
	if err != nil {
		return nil, err
	}
	if gone != "" {
		return failedFleet(in, capacity, fleetFault{code: "InvalidAMIID.NotFound", message: fmt.Sprintf("The image id '[%s]' does not exist", gone)}), nil
	}
	rewritten, err := e.selectInstanceTypes(ctx, in)
	if err != nil {
		return nil, err
	}
	return e.inner.CreateFleet(ctx, rewritten, optFns...)
}

// deregisteredImage returns the first AMI of in's overrides that moto no longer describes: moto
// answers DescribeImages for a deregistered id with no image and no error (and for an id it never
// knew with InvalidAMIID.NotFound, which is left to moto as before). Asked on every call: an AMI
// can be deregistered at any time.
func (e *EC2) deregisteredImage(ctx context.Context, in *ec2.CreateFleetInput) (string, error) {
	asked := map[string]bool{}
	for _, cfg := range in.LaunchTemplateConfigs {
		for _, o := range cfg.Overrides {
			id := aws.ToString(o.ImageId)
			if id == "" || asked[id] {
				continue
			}
			asked[id] = true
			out, err := e.own.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
			var api smithy.APIError
			switch {
			case errors.As(err, &api) && strings.HasPrefix(api.ErrorCode(), "InvalidAMIID"):
				continue
			case err != nil:
				return "", fmt.Errorf("ec2world: describe image %s: %w", id, err)
			case len(out.Images) == 0:
				return id, nil
			}
		}
	}
	return "", nil
}

func (e *EC2) takeFleetFault(capacity string) (fleetFault, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.fleetFaults {
		f := &e.fleetFaults[i]
		if f.left > 0 && (f.capacityType == "" || f.capacityType == capacity) {
			f.left--
			return *f, true
		}
	}
	return fleetFault{}, false
}

// failedFleet is AWS's answer when no pool could launch: one error per pool, no instance.
func failedFleet(in *ec2.CreateFleetInput, capacity string, f fleetFault) *ec2.CreateFleetOutput {
	out := &ec2.CreateFleetOutput{FleetId: aws.String(fleetID())}
	for _, cfg := range in.LaunchTemplateConfigs {
		var spec *types.FleetLaunchTemplateSpecification
		if s := cfg.LaunchTemplateSpecification; s != nil {
			spec = &types.FleetLaunchTemplateSpecification{LaunchTemplateId: s.LaunchTemplateId, LaunchTemplateName: s.LaunchTemplateName, Version: s.Version}
		}
		pools := cfg.Overrides
		if len(pools) == 0 {
			pools = []types.FleetLaunchTemplateOverridesRequest{{}}
		}
		for _, o := range pools {
			out.Errors = append(out.Errors, types.CreateFleetError{
				ErrorCode:    aws.String(f.code),
				ErrorMessage: aws.String(f.message),
				Lifecycle:    types.InstanceLifecycle(capacity),
				LaunchTemplateAndOverrides: &types.LaunchTemplateAndOverridesResponse{
					LaunchTemplateSpecification: spec,
					Overrides:                   &types.FleetLaunchTemplateOverrides{InstanceType: o.InstanceType, SubnetId: o.SubnetId, ImageId: o.ImageId},
				},
			})
		}
	}
	return out
}

// fleetID is a fleet id in AWS's format, fleet-<uuid>.
func fleetID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return "fleet-" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// DescribeInstances passes the call to moto.
func (e *EC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	if err := e.begin(DescribeInstances); err != nil {
		return nil, err
	}
	return e.inner.DescribeInstances(ctx, in, optFns...)
}

// TerminateInstances passes the call to moto.
func (e *EC2) TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, optFns ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	if err := e.begin(TerminateInstances); err != nil {
		return nil, err
	}
	return e.inner.TerminateInstances(ctx, in, optFns...)
}
