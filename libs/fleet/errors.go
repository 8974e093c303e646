package fleet

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// Error codes, as EC2 returns them in a fleet's Errors array or as API errors. CloudTrail (and
// some SDK paths) show the same codes with a "Client." prefix; kindOf ignores it.
var (
	// authCodes mean "not allowed": IAM denied one of the actions a launch needs (ec2:CreateFleet,
	// ec2:RunInstances on one of the launch's resources, ec2:CreateTags, iam:PassRole for the
	// instance profile, iam:CreateServiceLinkedRole for spot), or the credentials were refused. An
	// instant fleet makes its launches with the caller's permissions and reports a denial as one
	// error per pool in its Errors array, not as an API error; so does every code starting with
	// "AuthFailure." (AuthFailure.ServiceLinkedRoleCreationNotPermitted: the spot service-linked
	// role is missing and the caller may not create it).
	authCodes = map[string]bool{
		"UnauthorizedOperation": true,
		"AuthFailure":           true,
	}
	// capacityCodes mean "no instance from this pool right now": capacity, spot price or a
	// capacity quota. They resolve as other instances terminate or spot capacity returns.
	capacityCodes = map[string]bool{
		"InsufficientInstanceCapacity":         true,
		"InsufficientCapacity":                 true,
		"InsufficientHostCapacity":             true,
		"InsufficientReservedInstanceCapacity": true,
		"InsufficientFreeAddressesInSubnet":    true,
		"MaxSpotInstanceCountExceeded":         true,
		"MaxSpotFleetRequestCountExceeded":     true,
		"MaxFleetCountExceeded":                true,
		"InstanceLimitExceeded":                true,
		"VcpuLimitExceeded":                    true,
		"UnfulfillableCapacity":                true,
		"SpotMaxPriceTooLow":                   true,
	}
	// unsupportedCodes mean "this type is not offered in this subnet's zone": not a failure of the
	// launch while other pools report capacity codes, a configuration error when every pool does.
	unsupportedCodes = map[string]bool{
		"Unsupported":              true,
		"InstanceTypeNotSupported": true,
	}
	// imageGoneCodes mean "this AMI cannot be launched": deregistered (by hand or by Image
	// Builder's lifecycle policy), disabled, or not in a launchable state. EC2's error code
	// reference (docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html):
	// InvalidAMIID.NotFound "The specified AMI does not exist", InvalidAMIID.Unavailable "The
	// specified AMI has been deregistered and is no longer available, or is not in a state from
	// which you can launch an instance". Another AMI of the preset can still launch.
	imageGoneCodes = map[string]bool{
		"InvalidAMIID.NotFound":    true,
		"InvalidAMIID.Unavailable": true,
	}
	throttleCodes = map[string]bool{
		"RequestLimitExceeded": true,
		"Throttling":           true,
		"ThrottlingException":  true,
		"RequestThrottled":     true,
	}
	// configCodes (and every other "Invalid..." code: InvalidLaunchTemplateId.NotFound,
	// InvalidAMIID.Malformed, InvalidSubnetID.NotFound, InvalidParameterValue, ...) mean the
	// request itself is wrong: the same request cannot succeed later.
	configCodes = map[string]bool{
		"OptInRequired":        true,
		"MissingParameter":     true,
		"UnknownParameter":     true,
		"UnsupportedOperation": true,
	}
)

// tokenReusedCode: a ClientToken sent again with a request that differs from its first one.
const tokenReusedCode = "IdempotentParameterMismatch"

// bareCode is code without the "Client." prefix CloudTrail shows.
func bareCode(code string) string { return strings.TrimPrefix(code, "Client.") }

// kindOf maps one error code to a sentinel error, or nil when the code is unknown.
func kindOf(code string) error {
	code = bareCode(code)
	switch {
	case authCodes[code], strings.HasPrefix(code, "AuthFailure."):
		return ErrUnauthorized
	case code == tokenReusedCode:
		return ErrTokenReused
	case throttleCodes[code]:
		return ErrThrottled
	case capacityCodes[code]:
		return ErrCapacity
	case imageGoneCodes[code]:
		return ErrImageGone
	case configCodes[code], unsupportedCodes[code], strings.HasPrefix(code, "Invalid"):
		return ErrLaunchConfig
	}
	return nil
}

// kindOfAll classifies the codes of one answer. A denial wins over everything: the pools of one
// fleet differ only in type and subnet, so a denial for any of them is a policy that does not
// fit the stack, and a retry (or another capacity type) would only hide it. Then throttling
// (retry soon), then configuration (a retry cannot help), then a gone AMI (every pool sends the
// same AMI, so one pool's "gone" is every pool's, whatever the others reported first), then
// capacity when every code is one (an unsupported pool next to capacity failures is just one
// fewer pool); unknown codes leave the answer unclassified.
func kindOfAll(codes []string) error {
	var unauthorized, throttled, capacity, config, imageGone, unsupported, unknown bool
	for _, code := range codes {
		switch kind := kindOf(code); {
		case kind == ErrUnauthorized:
			unauthorized = true
		case kind == ErrThrottled:
			throttled = true
		case unsupportedCodes[bareCode(code)]:
			unsupported = true
		case kind == ErrLaunchConfig:
			config = true
		case kind == ErrImageGone:
			imageGone = true
		case kind == ErrCapacity:
			capacity = true
		default:
			unknown = true
		}
	}
	switch {
	case unauthorized:
		return ErrUnauthorized
	case throttled:
		return ErrThrottled
	case config:
		return ErrLaunchConfig
	case imageGone:
		return ErrImageGone
	case unknown:
		return nil
	case capacity:
		return ErrCapacity
	case unsupported:
		return ErrLaunchConfig
	}
	return nil
}

// kindError attaches a sentinel to an error without changing its text.
type kindError struct {
	err  error
	kind error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

// classified returns err with the sentinel of its API error code attached, if it has one.
func classified(err error) error {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return err
	}
	if kind := kindOf(api.ErrorCode()); kind != nil {
		return &kindError{err: err, kind: kind}
	}
	return err
}

// isNotFound reports an error for instance ids that do not exist (any more).
func isNotFound(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "InvalidInstanceID.NotFound"
}

// noInstanceError is a fleet's HTTP 200 answer with no instance: its Errors, deduplicated (EC2
// reports one per pool, often the same one), and the sentinel they add up to.
type noInstanceError struct {
	fleetID  string
	capacity types.DefaultTargetCapacityType
	errs     []codeMessage
	counts   []int
	kind     error
}

type codeMessage struct{ code, message string }

func newNoInstanceError(out *ec2.CreateFleetOutput, capacity types.DefaultTargetCapacityType) *noInstanceError {
	e := &noInstanceError{fleetID: aws.ToString(out.FleetId), capacity: capacity}
	// Pools are the same error when only their encoded authorization messages differ (each
	// encodes its own pool); the first one is kept whole, for sts decode-authorization-message.
	seen := map[codeMessage]int{}
	var codes []string
	for _, fe := range out.Errors {
		cm := codeMessage{aws.ToString(fe.ErrorCode), aws.ToString(fe.ErrorMessage)}
		codes = append(codes, cm.code)
		key := codeMessage{cm.code, withoutEncodedMessage(cm.message)}
		if i, ok := seen[key]; ok {
			e.counts[i]++
			continue
		}
		seen[key] = len(e.errs)
		e.errs = append(e.errs, cm)
		e.counts = append(e.counts, 1)
	}
	e.kind = kindOfAll(codes)
	return e
}

func (e *noInstanceError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fleet %s launched no instance", e.fleetID)
	if len(e.errs) == 0 {
		b.WriteString(" and reported no error")
	}
	for i, cm := range e.errs {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s: %s", sep, cm.code, cm.message)
		if e.counts[i] > 1 {
			fmt.Fprintf(&b, " (%d pools)", e.counts[i])
		}
	}
	if e.kind != nil {
		fmt.Fprintf(&b, " (%v)", e.kind)
	}
	if e.kind == ErrUnauthorized {
		fmt.Fprintf(&b, "; missing permission: %s; see %s", e.permission(), iamDoc)
	}
	return b.String()
}

func (e *noInstanceError) Unwrap() error { return e.kind }

// permission names what the fleet's denials most likely lack: what AWS names in one of them, or
// else what the first denial's code and the capacity type point to.
func (e *noInstanceError) permission() string {
	var first *codeMessage
	for i, cm := range e.errs {
		if kindOf(cm.code) != ErrUnauthorized {
			continue
		}
		if p := deniedIn(cm.message); p != "" {
			return p
		}
		if first == nil {
			first = &e.errs[i]
		}
	}
	return missingPermission(first.code, first.message, e.capacity, true)
}

// iamDoc is where an operator reads which permission a launch needs and why.
const iamDoc = "docs/provisioning.md#iam-for-launches"

// missingPermission names, for an operator, the permission an authorization failure most likely
// lacks: the action and resource AWS names in the message when it does; otherwise what the code
// and the kind of call point to. inFleet is a denial in a fleet's Errors (a launch EC2 made for
// the fleet), as opposed to an API error of CreateFleet itself. Region, account and partition
// are left as placeholders: EC2's answer does not carry them.
func missingPermission(code, message string, capacity types.DefaultTargetCapacityType, inFleet bool) string {
	if p := deniedIn(message); p != "" {
		return p
	}
	switch {
	case strings.HasSuffix(code, "ServiceLinkedRoleCreationNotPermitted"):
		return "iam:CreateServiceLinkedRole for spot.amazonaws.com (AWSServiceRoleForEC2Spot; " +
			"or create the role once: aws iam create-service-linked-role --aws-service-name spot.amazonaws.com)"
	case !inFleet:
		return "ec2:CreateFleet on arn:aws:ec2:<region>:<account>:fleet/* with the request tag " + ManagedTag + "=true, " +
			"and on the launch template, AMI, snapshot, subnets and security group"
	case capacity == types.DefaultTargetCapacityTypeSpot:
		return "ec2:RunInstances on arn:aws:ec2:<region>:<account>:spot-instances-request/* (spot launches)"
	}
	return "ec2:RunInstances on the launch template, AMI, snapshot, subnets, security group and network-interface/*, " +
		"on instance/* and volume/* with the request tag " + ManagedTag + "=true, or iam:PassRole on the runner instance role"
}

// deniedIn returns what a denial message names ("... is not authorized to perform:
// ec2:RunInstances on resource: arn:...:spot-instances-request/* because no identity-based policy
// allows ..."), as "ec2:RunInstances on arn:...", or "" when it names nothing (AWS often gives
// only the encoded message).
func deniedIn(message string) string {
	_, rest, ok := strings.Cut(message, "not authorized to perform: ")
	if !ok {
		return ""
	}
	for _, end := range []string{" because ", " with an explicit deny", ". Encoded authorization failure message"} {
		rest, _, _ = strings.Cut(rest, end)
	}
	rest = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "."))
	return strings.Replace(rest, " on resource: ", " on ", 1)
}

// withoutEncodedMessage is message up to AWS's encoded authorization failure message.
func withoutEncodedMessage(message string) string {
	before, _, _ := strings.Cut(message, "Encoded authorization failure message:")
	return strings.TrimSpace(before)
}

// LaunchedNothing reports whether err is a fleet's definite answer that it launched no instance
// (HTTP 200 with zero instances). Such an answer is remembered for its ClientToken, so the next
// try needs a new token; after any other failure (an API error, a timeout) the same token must be
// sent again, to get back an instance that may exist.
func LaunchedNothing(err error) bool {
	var e *noInstanceError
	return errors.As(err, &e)
}
