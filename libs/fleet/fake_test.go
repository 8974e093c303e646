package fleet

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// fakeEC2 records every call. CreateFleet gives the scripted answers in order, then launches one
// instance per call; DescribeInstances and TerminateInstances work on a stateful set of instances,
// with EC2's filters and EC2's all-or-nothing NotFound.
type fakeEC2 struct {
	mu sync.Mutex

	answers []answer                  // CreateFleet answers, consumed in order
	fleets  []*ec2.CreateFleetInput   // every CreateFleet input
	launchN int                       // instances launched by default answers
	insts   map[string]types.Instance // by id
	errs    map[string]error          // op name -> error for every call of it

	describes  []*ec2.DescribeInstancesInput
	terminated [][]string // ids of every TerminateInstances call
	// vanish are removed (as if terminated and forgotten) right before the first TerminateInstances.
	vanish []string
}

type answer struct {
	out *ec2.CreateFleetOutput
	err error
}

func newFake(insts ...types.Instance) *fakeEC2 {
	f := &fakeEC2{insts: map[string]types.Instance{}, errs: map[string]error{}}
	for _, i := range insts {
		f.insts[aws.ToString(i.InstanceId)] = i
	}
	return f
}

func (f *fakeEC2) CreateFleet(_ context.Context, in *ec2.CreateFleetInput, _ ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fleets = append(f.fleets, in)
	if err := f.errs["CreateFleet"]; err != nil {
		return nil, err
	}
	if len(f.answers) > 0 {
		a := f.answers[0]
		f.answers = f.answers[1:]
		return a.out, a.err
	}
	f.launchN++
	o := in.LaunchTemplateConfigs[0].Overrides[0]
	it := o.InstanceType
	if it == "" {
		it = "m5.xlarge"
	}
	return &ec2.CreateFleetOutput{
		FleetId: aws.String(fmt.Sprintf("fleet-%d", len(f.fleets))),
		Instances: []types.CreateFleetInstance{{
			InstanceIds:  []string{fmt.Sprintf("i-%04d", f.launchN)},
			InstanceType: it,
			Lifecycle:    types.InstanceLifecycle(in.TargetCapacitySpecification.DefaultTargetCapacityType),
			LaunchTemplateAndOverrides: &types.LaunchTemplateAndOverridesResponse{
				Overrides: &types.FleetLaunchTemplateOverrides{InstanceType: it, SubnetId: o.SubnetId},
			},
		}},
	}, nil
}

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describes = append(f.describes, in)
	if err := f.errs["DescribeInstances"]; err != nil {
		return nil, err
	}
	var match []types.Instance
	for _, id := range slices.Sorted(maps.Keys(f.insts)) {
		if i := f.insts[id]; matches(i, in.Filters) {
			match = append(match, i)
		}
	}
	return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: match}}}, nil
}

func (f *fakeEC2) TerminateInstances(_ context.Context, in *ec2.TerminateInstancesInput, _ ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.terminated = append(f.terminated, in.InstanceIds)
	if err := f.errs["TerminateInstances"]; err != nil {
		return nil, err
	}
	for _, id := range f.vanish {
		delete(f.insts, id)
	}
	f.vanish = nil
	for _, id := range in.InstanceIds {
		if _, ok := f.insts[id]; !ok {
			return nil, apiError("InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id))
		}
	}
	for _, id := range in.InstanceIds {
		i := f.insts[id]
		i.State = &types.InstanceState{Name: types.InstanceStateNameShuttingDown}
		f.insts[id] = i
	}
	return &ec2.TerminateInstancesOutput{}, nil
}

// matches applies the filters Find and Terminate use, as EC2 does: every filter, any of its values.
func matches(i types.Instance, filters []types.Filter) bool {
	for _, flt := range filters {
		name := aws.ToString(flt.Name)
		var got string
		switch {
		case name == "instance-id":
			got = aws.ToString(i.InstanceId)
		case name == "instance-state-name":
			got = string(i.State.Name)
		case strings.HasPrefix(name, "tag:"):
			got = "\x00absent"
			for _, t := range i.Tags {
				if aws.ToString(t.Key) == strings.TrimPrefix(name, "tag:") {
					got = aws.ToString(t.Value)
				}
			}
		default:
			panic("fake: unsupported filter " + name)
		}
		if !slices.Contains(flt.Values, got) {
			return false
		}
	}
	return true
}

// apiError is an error as the SDK returns it for an EC2 error code.
func apiError(code, message string) error {
	return &smithy.OperationError{ServiceID: "EC2", OperationName: "Call", Err: &smithy.GenericAPIError{Code: code, Message: message}}
}

// noInstance is a fleet answer with zero instances and one error per code.
func noInstance(codes ...string) answer {
	out := &ec2.CreateFleetOutput{FleetId: aws.String("fleet-failed")}
	for _, c := range codes {
		out.Errors = append(out.Errors, types.CreateFleetError{ErrorCode: aws.String(c), ErrorMessage: aws.String("message for " + c)})
	}
	return answer{out: out}
}

// noInstanceMessages is a fleet answer with zero instances and one error per message, all with
// code (as AWS answers when every pool fails the same way, each with its own message).
func noInstanceMessages(code string, messages ...string) answer {
	out := &ec2.CreateFleetOutput{FleetId: aws.String("fleet-failed")}
	for _, m := range messages {
		out.Errors = append(out.Errors, types.CreateFleetError{ErrorCode: aws.String(code), ErrorMessage: aws.String(m)})
	}
	return answer{out: out}
}

// instance is an instance as DescribeInstances reports it.
func instance(id, state, lifecycle string, launched time.Time, tags ...string) types.Instance {
	i := types.Instance{
		InstanceId:        aws.String(id),
		InstanceType:      "m5.large",
		InstanceLifecycle: types.InstanceLifecycleType(lifecycle),
		SubnetId:          aws.String("subnet-a"),
		LaunchTime:        aws.Time(launched),
		State:             &types.InstanceState{Name: types.InstanceStateName(state)},
	}
	for k := 0; k+1 < len(tags); k += 2 {
		i.Tags = append(i.Tags, types.Tag{Key: aws.String(tags[k]), Value: aws.String(tags[k+1])})
	}
	return i
}
