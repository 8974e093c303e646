package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// batch bounds the ids of one DescribeInstances filter or TerminateInstances call.
const batch = 100

// Find returns the live (pending or running) instances that carry all the given tags, e.g.
// {"spotrunner:job": "ghes.example.com/42"}, oldest first. At least one tag is required: Find never
// lists every instance of the account.
func (c *Client) Find(ctx context.Context, tags map[string]string) ([]Instance, error) {
	if len(tags) == 0 {
		return nil, errors.New("find instances: no tag to look for")
	}
	filters := []types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		filters = append(filters, types.Filter{Name: aws.String("tag:" + k), Values: []string{tags[k]}})
	}
	found, err := c.describe(ctx, filters)
	if err != nil {
		return nil, fmt.Errorf("find instances tagged %v: %w", tags, err)
	}
	slices.SortFunc(found, func(a, b Instance) int {
		return cmp.Or(a.LaunchedAt.Compare(b.LaunchedAt), strings.Compare(a.ID, b.ID))
	})
	return found, nil
}

// Lookup returns the instance with the given id, in any state (State says which), and found=false
// when EC2 does not know the id: never launched, or terminated long enough ago that EC2 forgot
// it. It does not check ManagedTag; Tags has it. Like Terminate it asks with an instance-id
// filter, so an unknown id is an answer, not InvalidInstanceID.NotFound.
func (c *Client) Lookup(ctx context.Context, id string) (Instance, bool, error) {
	if id == "" {
		return Instance{}, false, errors.New("look up instance: no id")
	}
	got, err := c.describe(ctx, []types.Filter{{Name: aws.String("instance-id"), Values: []string{id}}})
	if err != nil {
		return Instance{}, false, fmt.Errorf("look up instance %q: %w", id, err)
	}
	for _, inst := range got {
		if inst.ID == id {
			return inst, true, nil
		}
	}
	return Instance{}, false, nil
}

// Terminate terminates the given instances, but only those tagged ManagedTag=true: it looks them up
// first, and refuses the others (the error lists them and wraps ErrNotOurs) while still terminating
// ours. Instances already gone, terminated or shutting down are not an error.
func (c *Client) Terminate(ctx context.Context, ids ...string) error {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(ids) == 0 {
		return nil
	}
	var found []Instance
	for chunk := range slices.Chunk(ids, batch) {
		// An instance-id filter, not InstanceIds: a missing id is simply not returned, where
		// InstanceIds fails the whole call with InvalidInstanceID.NotFound.
		got, err := c.describe(ctx, []types.Filter{{Name: aws.String("instance-id"), Values: chunk}})
		if err != nil {
			return fmt.Errorf("terminate instances %s: look up: %w", strings.Join(chunk, ", "), err)
		}
		found = append(found, got...)
	}
	var ours, refused []string
	for _, inst := range found {
		switch {
		case inst.Tags[ManagedTag] != "true":
			refused = append(refused, inst.ID)
		case inst.State == string(types.InstanceStateNameTerminated), inst.State == string(types.InstanceStateNameShuttingDown):
		default:
			ours = append(ours, inst.ID)
		}
	}
	var errs []error
	for chunk := range slices.Chunk(ours, batch) {
		if err := c.terminate(ctx, chunk); err != nil {
			errs = append(errs, err)
		}
	}
	if len(refused) > 0 {
		slices.Sort(refused)
		errs = append(errs, fmt.Errorf("terminate instances %s: not tagged %s=true: %w", strings.Join(refused, ", "), ManagedTag, ErrNotOurs))
	}
	return errors.Join(errs...)
}

// terminate terminates ids. EC2 fails the whole call when one of them has vanished since the look-up;
// then each is terminated on its own, and the vanished ones are skipped.
func (c *Client) terminate(ctx context.Context, ids []string) error {
	_, err := c.api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	switch {
	case err == nil, isNotFound(err) && len(ids) == 1:
		return nil
	case !isNotFound(err):
		return classified(fmt.Errorf("terminate instances %s: %w", strings.Join(ids, ", "), err))
	}
	var errs []error
	for _, id := range ids {
		if err := c.terminate(ctx, []string{id}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// describe returns every instance matching filters, all pages.
func (c *Client) describe(ctx context.Context, filters []types.Filter) ([]Instance, error) {
	var out []Instance
	pages := ec2.NewDescribeInstancesPaginator(c.api, &ec2.DescribeInstancesInput{Filters: filters})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, classified(fmt.Errorf("describe instances: %w", err))
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				out = append(out, fromEC2(i))
			}
		}
	}
	return out, nil
}

// fromEC2 converts an instance as DescribeInstances reports it.
func fromEC2(i types.Instance) Instance {
	inst := Instance{
		ID:           aws.ToString(i.InstanceId),
		InstanceType: string(i.InstanceType),
		CapacityType: capacityType(string(i.InstanceLifecycle)),
		SubnetID:     aws.ToString(i.SubnetId),
		LaunchedAt:   aws.ToTime(i.LaunchTime),
		Tags:         map[string]string{},
	}
	if i.State != nil {
		inst.State = string(i.State.Name)
	}
	for _, t := range i.Tags {
		inst.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return inst
}
