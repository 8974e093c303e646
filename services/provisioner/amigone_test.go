package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/ec2world"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// TestAMIGone (local world; moto launches from a deregistered AMI, ec2world refuses it as AWS
// does): preset linux-x64's record names fresh copies of the world's x86_64 AMI, deregistered in
// moto before job 1 is queued. Operator-fixable failures would be retried after an hour here, so
// only a transient failure is retried within the test.
//   - current gone, previous live: the first try's fleet answers InvalidAMIID.NotFound; that is
//     one transient failure (never the operator's, never the DLQ's), the record forgets the gone
//     AMI (the previous one becomes current), and the retry launches from the previous AMI.
//   - current and previous gone: each try forgets one AMI (one transient failure each), then the
//     job waits, queued with the reason: nothing launched, no slot counted.
func TestAMIGone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		previousGone bool
		wantRounds   []int // failed messages per pump
		wantState    state.JobState
		wantReason   string
		wantStatus   string // of the preset record at the end
		wantTry      int    // the job's launch try at the end: one more per gone AMI
		wantLive     int
	}{
		{
			name:       "current gone: launched from the previous",
			wantRounds: []int{1, 0}, wantState: state.Launched, wantStatus: state.ImageReady, wantTry: 1, wantLive: 1,
		},
		{
			name: "current and previous gone: the job waits", previousGone: true,
			wantRounds: []int{1, 1, 0}, wantState: state.Queued, wantReason: "waiting: preset linux-x64 (image failed)",
			wantStatus: state.ImageFailed, wantTry: 2, wantLive: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.h.backoff.Operator = time.Hour
			ctx := context.Background()
			current := deregistered(r, ec2world.CopyImage(t, r.ec2raw, r.world.Images["x86_64"]))
			// Moto's built-in AMI is shared by every test: only a copy of it may be deregistered.
			previous, lastGone, wantImage := r.world.Images["x86_64"], current, state.PresetImage{Status: tt.wantStatus, AMIID: r.world.Images["x86_64"]}
			if tt.previousGone {
				previous = deregistered(r, ec2world.CopyImage(t, r.ec2raw, r.world.Images["x86_64"]))
				lastGone, wantImage = previous, state.PresetImage{Status: tt.wantStatus}
			}
			if err := r.store.PutPresetImage(ctx, state.PresetImage{Name: "linux-x64", Status: state.ImageReady, AMIID: current, PreviousAMIID: previous, UpdatedAt: r.now}); err != nil {
				t.Fatal(err)
			}

			r.send(r.msg(queue.ActionQueued, 1))
			rounds := r.drain(len(tt.wantRounds))
			if diff := cmp.Diff(tt.wantRounds, rounds); diff != "" {
				t.Errorf("failed messages per round (-want +got):\n%s", diff)
			}
			j := r.job(1)
			if j.State != tt.wantState || !strings.Contains(j.Reason, tt.wantReason) {
				t.Errorf("job = %s %q, want %s %q", j.State, j.Reason, tt.wantState, tt.wantReason)
			}
			if j.LaunchTry != tt.wantTry {
				t.Errorf("job at launch try %d, want %d", j.LaunchTry, tt.wantTry)
			}
			if tt.wantState == state.Queued && !strings.Contains(j.Reason, "no AMI") {
				t.Errorf("job reason %q does not say it waits for an AMI", j.Reason)
			}

			img, err := r.store.PresetImage(ctx, "linux-x64")
			if err != nil {
				t.Fatal(err)
			}
			got := state.PresetImage{Status: img.Status, AMIID: img.AMIID, PreviousAMIID: img.PreviousAMIID}
			if diff := cmp.Diff(wantImage, got); diff != "" {
				t.Errorf("preset record (-want +got):\n%s", diff)
			}
			if !strings.Contains(img.Reason, lastGone) {
				t.Errorf("preset record reason %q does not name the AMI forgotten last, %s", img.Reason, lastGone)
			}

			live := r.instances()
			if len(live) != tt.wantLive {
				t.Fatalf("%d live instances, want %d: %+v", len(live), tt.wantLive, live)
			}
			if tt.wantLive == 1 {
				if live[0].ID != j.InstanceID {
					t.Errorf("live instance %s, want the job's %s", live[0].ID, j.InstanceID)
				}
				out, err := r.ec2raw.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{j.InstanceID}})
				if err != nil {
					t.Fatal(err)
				}
				if got := aws.ToString(out.Reservations[0].Instances[0].ImageId); got != previous {
					t.Errorf("instance %s runs AMI %s, want the previous AMI %s", j.InstanceID, got, previous)
				}
				if runners := r.sim.Runners(); len(runners) != 1 || runners[0].Name != queue.RunnerName(j.InstanceID) {
					t.Errorf("runners %+v, want the instance's only", runners)
				}
			}
			// Each gone AMI costs one CreateFleet (spotPreferred does not try on-demand with it).
			if n := strings.Count(strings.Join(r.ec2.Calls(), " "), ec2world.CreateFleet); n != 2 {
				t.Errorf("EC2 calls %v, want 2 CreateFleet", r.ec2.Calls())
			}
			if n := r.slots(); n != tt.wantLive {
				t.Errorf("%d slots counted, want %d", n, tt.wantLive)
			}
		})
	}
}

// deregistered deregisters ami in moto and returns it.
func deregistered(r *rig, ami string) string {
	r.t.Helper()
	if _, err := r.ec2raw.DeregisterImage(context.Background(), &ec2.DeregisterImageInput{ImageId: aws.String(ami)}); err != nil {
		r.t.Fatal(err)
	}
	return ami
}
