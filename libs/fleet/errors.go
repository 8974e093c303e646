package fleet

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
)

// Error codes, as EC2 returns them in a fleet's Errors array or as API errors.
var (
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
	throttleCodes = map[string]bool{
		"RequestLimitExceeded": true,
		"Throttling":           true,
		"ThrottlingException":  true,
		"RequestThrottled":     true,
	}
	// configCodes (and every "Invalid..." code: InvalidLaunchTemplateId.NotFound,
	// InvalidAMIID.NotFound, InvalidSubnetID.NotFound, InvalidParameterValue, ...) mean the request
	// itself is wrong: the same request cannot succeed later.
	configCodes = map[string]bool{
		"UnauthorizedOperation":       true,
		"AuthFailure":                 true,
		"OptInRequired":               true,
		"MissingParameter":            true,
		"UnknownParameter":            true,
		"UnsupportedOperation":        true,
		"IdempotentParameterMismatch": true,
	}
)

// kindOf maps one error code to a sentinel error, or nil when the code is unknown.
func kindOf(code string) error {
	switch {
	case throttleCodes[code]:
		return ErrThrottled
	case capacityCodes[code]:
		return ErrCapacity
	case configCodes[code], unsupportedCodes[code], strings.HasPrefix(code, "Invalid"):
		return ErrLaunchConfig
	}
	return nil
}

// kindOfAll classifies the codes of one answer: throttling wins (retry soon), then configuration
// (a retry cannot help), then capacity when every code is one (an unsupported pool next to
// capacity failures is just one fewer pool); unknown codes leave the answer unclassified.
func kindOfAll(codes []string) error {
	var capacity, config, unsupported, unknown bool
	for _, code := range codes {
		switch kind := kindOf(code); {
		case kind == ErrThrottled:
			return ErrThrottled
		case unsupportedCodes[code]:
			unsupported = true
		case kind == ErrLaunchConfig:
			config = true
		case kind == ErrCapacity:
			capacity = true
		default:
			unknown = true
		}
	}
	switch {
	case config:
		return ErrLaunchConfig
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
	fleetID string
	errs    []codeMessage
	counts  []int
	kind    error
}

type codeMessage struct{ code, message string }

func newNoInstanceError(out *ec2.CreateFleetOutput) *noInstanceError {
	e := &noInstanceError{fleetID: aws.ToString(out.FleetId)}
	seen := map[codeMessage]int{}
	var codes []string
	for _, fe := range out.Errors {
		cm := codeMessage{aws.ToString(fe.ErrorCode), aws.ToString(fe.ErrorMessage)}
		codes = append(codes, cm.code)
		if i, ok := seen[cm]; ok {
			e.counts[i]++
			continue
		}
		seen[cm] = len(e.errs)
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
	return b.String()
}

func (e *noInstanceError) Unwrap() error { return e.kind }

// LaunchedNothing reports whether err is a fleet's definite answer that it launched no instance
// (HTTP 200 with zero instances). Such an answer is remembered for its ClientToken, so the next
// try needs a new token; after any other failure (an API error, a timeout) the same token must be
// sent again, to get back an instance that may exist.
func LaunchedNothing(err error) bool {
	var e *noInstanceError
	return errors.As(err, &e)
}
