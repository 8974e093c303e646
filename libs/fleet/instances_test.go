package fleet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var t0 = time.Date(2025, 3, 4, 22, 0, 0, 0, time.UTC)

// account is a stateful fake's instances: job 42's live spot and on-demand runners (the on-demand
// one older), its terminated first try, job 43's runner, and a stranger's instance without tags.
func account() *fakeEC2 {
	return newFake(
		instance("i-42spot", "running", "spot", t0.Add(time.Minute), ManagedTag, "true", "spotrunner:job", "ghes/42"),
		instance("i-42od", "pending", "", t0, ManagedTag, "true", "spotrunner:job", "ghes/42"),
		instance("i-42old", "terminated", "spot", t0.Add(-time.Hour), ManagedTag, "true", "spotrunner:job", "ghes/42"),
		instance("i-43", "running", "spot", t0, ManagedTag, "true", "spotrunner:job", "ghes/43"),
		instance("i-stranger", "running", "", t0, "Name", "database"),
	)
}

// TestFind: fixtures are account()'s instances. Find for job 42 must ask DescribeInstances for
// live states and every tag, and return job 42's two live instances, oldest first, with capacity
// types from their lifecycle. No tags is an error, not a listing of the account; a throttled call
// is ErrThrottled.
func TestFind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := account()
	c := New(f)
	got, err := c.Find(ctx, map[string]string{"spotrunner:job": "ghes/42", ManagedTag: "true"})
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{ManagedTag: "true", "spotrunner:job": "ghes/42"}
	want := []Instance{
		{ID: "i-42od", InstanceType: "m5.large", CapacityType: OnDemand, SubnetID: "subnet-a", State: "pending", LaunchedAt: t0, Tags: tags},
		{ID: "i-42spot", InstanceType: "m5.large", CapacityType: Spot, SubnetID: "subnet-a", State: "running", LaunchedAt: t0.Add(time.Minute), Tags: tags},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Find() (-want +got):\n%s", diff)
	}
	wantFilters := []types.Filter{
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}},
		{Name: aws.String("tag:spotrunner:job"), Values: []string{"ghes/42"}},
		{Name: aws.String("tag:spotrunner:managed"), Values: []string{"true"}},
	}
	if diff := cmp.Diff(wantFilters, f.describes[0].Filters, cmpSDK); diff != "" {
		t.Errorf("DescribeInstances filters (-want +got):\n%s", diff)
	}

	if _, err := c.Find(ctx, nil); err == nil {
		t.Error("Find(no tags) succeeded, want an error")
	}
	f.errs["DescribeInstances"] = apiError("RequestLimitExceeded", "Request limit exceeded.")
	_, err = c.Find(ctx, map[string]string{"spotrunner:job": "ghes/42"})
	checkKind(t, err, ErrThrottled)
}

// cmpSDK compares SDK filters, ignoring their unexported no-serde marker.
var cmpSDK = cmpopts.IgnoreUnexported(types.Filter{})

// TestTerminate: fixtures are account()'s instances. Ours are terminated in one call; the stranger
// is refused with ErrNotOurs (named in the error) and left running, while ours in the same call are
// still terminated; ids that are gone, terminated or already asked to terminate make no call and
// no error; an instance that vanishes between the look-up and the termination is skipped.
func TestTerminate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		ids            []string
		vanish         []string
		errs           map[string]error
		wantTerminated [][]string
		wantKind       error
		wantErr        bool
		wantText       string
		wantRunning    []string // instances that must still be running afterwards
	}{
		{
			name: "ours", ids: []string{"i-42spot", "i-42od", "i-42spot"},
			wantTerminated: [][]string{{"i-42od", "i-42spot"}},
		},
		{
			name: "a stranger is refused", ids: []string{"i-stranger"},
			wantErr: true, wantKind: ErrNotOurs, wantText: "i-stranger", wantRunning: []string{"i-stranger"},
		},
		{
			name: "ours next to a stranger", ids: []string{"i-stranger", "i-43"},
			wantTerminated: [][]string{{"i-43"}},
			wantErr:        true, wantKind: ErrNotOurs, wantText: "i-stranger", wantRunning: []string{"i-stranger"},
		},
		{
			name: "gone and terminated ones are no error", ids: []string{"i-00000000000000000", "i-42old"},
		},
		{
			name: "no ids", ids: nil,
		},
		{
			name: "one vanishes before termination", ids: []string{"i-42spot", "i-43"}, vanish: []string{"i-42spot"},
			wantTerminated: [][]string{{"i-42spot", "i-43"}, {"i-42spot"}, {"i-43"}},
		},
		{
			name: "throttled look-up terminates nothing", ids: []string{"i-43"},
			errs:    map[string]error{"DescribeInstances": apiError("RequestLimitExceeded", "Request limit exceeded.")},
			wantErr: true, wantKind: ErrThrottled, wantRunning: []string{"i-43"},
		},
		{
			name: "throttled termination", ids: []string{"i-43"},
			errs:           map[string]error{"TerminateInstances": apiError("RequestLimitExceeded", "Request limit exceeded.")},
			wantTerminated: [][]string{{"i-43"}},
			wantErr:        true, wantKind: ErrThrottled, wantText: "i-43", wantRunning: []string{"i-43"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := account()
			f.vanish = tt.vanish
			for op, err := range tt.errs {
				f.errs[op] = err
			}
			err := New(f).Terminate(context.Background(), tt.ids...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Terminate() error = %v, want error %v", err, tt.wantErr)
			}
			checkKind(t, err, tt.wantKind)
			if err != nil && !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not name %q", err, tt.wantText)
			}
			if diff := cmp.Diff(tt.wantTerminated, f.terminated); diff != "" {
				t.Errorf("TerminateInstances calls (-want +got):\n%s", diff)
			}
			for _, id := range tt.wantRunning {
				if s := f.insts[id].State.Name; s != "running" {
					t.Errorf("%s is %s, want running", id, s)
				}
			}
		})
	}
}

// TestLookup: fixtures are account()'s instances. Lookup of job 42's running spot runner and of
// its terminated first try must return each with its state, capacity type and tags; an id EC2
// does not know must be found=false without an error; every look-up must ask with an instance-id
// filter (an InstanceIds list fails with NotFound instead); a throttled call is ErrThrottled and
// an empty id an error that asks EC2 nothing.
func TestLookup(t *testing.T) {
	t.Parallel()
	tags := map[string]string{ManagedTag: "true", "spotrunner:job": "ghes/42"}
	tests := []struct {
		name      string
		id        string
		errs      map[string]error
		want      Instance
		wantFound bool
		wantErr   bool
		wantKind  error
		wantCalls int // DescribeInstances calls
	}{
		{
			name: "live", id: "i-42spot", wantFound: true, wantCalls: 1,
			want: Instance{ID: "i-42spot", InstanceType: "m5.large", CapacityType: Spot, SubnetID: "subnet-a", State: "running", LaunchedAt: t0.Add(time.Minute), Tags: tags},
		},
		{
			name: "terminated", id: "i-42old", wantFound: true, wantCalls: 1,
			want: Instance{ID: "i-42old", InstanceType: "m5.large", CapacityType: Spot, SubnetID: "subnet-a", State: "terminated", LaunchedAt: t0.Add(-time.Hour), Tags: tags},
		},
		{
			name: "unknown", id: "i-00000000000000000", wantCalls: 1,
		},
		{
			name: "throttled", id: "i-42spot", wantCalls: 1,
			errs:    map[string]error{"DescribeInstances": apiError("RequestLimitExceeded", "Request limit exceeded.")},
			wantErr: true, wantKind: ErrThrottled,
		},
		{
			name: "no id", id: "", wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := account()
			for op, err := range tt.errs {
				f.errs[op] = err
			}
			got, found, err := New(f).Lookup(context.Background(), tt.id)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Lookup(%q) error = %v, want error %v", tt.id, err, tt.wantErr)
			}
			checkKind(t, err, tt.wantKind)
			if found != tt.wantFound {
				t.Errorf("Lookup(%q) found = %v, want %v", tt.id, found, tt.wantFound)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Lookup(%q) (-want +got):\n%s", tt.id, diff)
			}
			if len(f.describes) != tt.wantCalls {
				t.Fatalf("%d DescribeInstances calls, want %d", len(f.describes), tt.wantCalls)
			}
			for _, in := range f.describes {
				want := []types.Filter{{Name: aws.String("instance-id"), Values: []string{tt.id}}}
				if diff := cmp.Diff(want, in.Filters, cmpSDK); diff != "" || in.InstanceIds != nil {
					t.Errorf("DescribeInstances ids %v, filters (-want +got):\n%s", in.InstanceIds, diff)
				}
			}
		})
	}
}
