package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/imagebuilder"
	ibtypes "github.com/aws/aws-sdk-go-v2/service/imagebuilder/types"

	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/state"
)

// ImageBuilder is the part of the Image Builder client the watcher uses.
type ImageBuilder interface {
	GetImage(ctx context.Context, in *imagebuilder.GetImageInput, optFns ...func(*imagebuilder.Options)) (*imagebuilder.GetImageOutput, error)
	StartImagePipelineExecution(ctx context.Context, in *imagebuilder.StartImagePipelineExecutionInput, optFns ...func(*imagebuilder.Options)) (*imagebuilder.StartImagePipelineExecutionOutput, error)
}

// imageStateChange is the detail of an "EC2 Image Builder Image State Change" event.
type imageStateChange struct {
	State struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	} `json:"state"`
}

// Image statuses as Image Builder reports them (ImageState.status).
const (
	statusAvailable = "AVAILABLE"
	statusFailed    = "FAILED"
	statusCancelled = "CANCELLED"
)

// building are the statuses of a build under way.
var building = map[string]bool{"PENDING": true, "CREATING": true, "BUILDING": true, "TESTING": true, "DISTRIBUTING": true, "INTEGRATING": true}

// image handles one image state change: the image must come from a pipeline of ours (GetImage's
// source pipeline), its build version orders it against what the preset's record has seen, and
// the record moves only forward (applyImage).
func (h *Handler) image(ctx context.Context, imageARN string, ch imageStateChange) (string, error) {
	status := ch.State.Status
	if !building[status] && status != statusAvailable && status != statusFailed && status != statusCancelled {
		// DEPRECATED, DISABLED, DELETED: the AMI's own fate arrives as an EC2 AMI State Change.
		return "ignored: status " + status + " is not a build result", nil
	}
	b, err := parseBuild(imageARN)
	if err != nil {
		return "ignored: " + err.Error(), nil
	}
	out, err := h.images.GetImage(ctx, &imagebuilder.GetImageInput{ImageBuildVersionArn: aws.String(imageARN)})
	var nf *ibtypes.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		return "ignored: image " + imageARN + " no longer exists", nil
	case err != nil:
		return "", fmt.Errorf("get image %s: %w", imageARN, err)
	case out.Image == nil:
		return "", fmt.Errorf("get image %s: empty answer", imageARN)
	}
	preset, ours := h.presetOf(aws.ToString(out.Image.SourcePipelineArn))
	if !ours {
		return fmt.Sprintf("ignored: image of pipeline %q, not one of this stack's", aws.ToString(out.Image.SourcePipelineArn)), nil
	}
	ev := imageEvent{build: b, status: status, reason: ch.State.Reason}
	if status == statusAvailable {
		if ev.ami = amiIn(out.Image, h.region); ev.ami == "" {
			ev.status, ev.reason = statusFailed, "image "+imageARN+" is available but has no AMI in "+h.region
		}
	}
	rec, err := h.jobs.UpdatePresetImage(ctx, preset, func(cur state.PresetImage, exists bool) (state.PresetImage, error) {
		return applyImage(cur, exists, ev)
	})
	if err != nil {
		return "", err
	}
	logging.From(ctx).Info().Str("preset", preset).Str("build", b.String()).Str("imageStatus", status).
		Str("presetStatus", rec.Status).Str("amiId", rec.AMIID).Str("previousAmiId", rec.PreviousAMIID).Msg("preset image")
	if ev.status == statusAvailable && rec.AMIID == ev.ami {
		if err := h.publishAMI(ctx, preset, rec.AMIID); err != nil {
			return "", err
		}
	}
	return "preset " + preset + " " + rec.Status, nil
}

// imageEvent is what one image state change says, with the AMI of an available image.
type imageEvent struct {
	build  build
	status string
	reason string
	ami    string
}

// applyImage is the preset record after ev, or state.ErrUnchanged. The record only moves forward:
//   - a result (available, failed, cancelled) of a build older than the newest build seen, or than
//     the build of the current AMI, changes nothing: a newer build's result wins, whatever the
//     order the events arrive in;
//   - a build under way marks the preset building (keeping its AMIs) unless that build, or a newer
//     one, already has a result: a late BUILDING never undoes an AVAILABLE;
//   - available: the AMI becomes current, the current one previous, the preset ready (building
//     again when a newer build is under way); failed or cancelled: the preset is failed with the
//     reason while its AMIs keep serving.
func applyImage(cur state.PresetImage, exists bool, ev imageEvent) (state.PresetImage, error) {
	newest, _ := parseVersion(cur.Build)
	current, _ := parseVersion(cur.AMIBuild)
	if exists && (ev.build.less(newest) || !current.less(ev.build)) {
		return cur, state.ErrUnchanged
	}
	same := exists && ev.build == newest
	switch {
	case building[ev.status]:
		if same {
			return cur, state.ErrUnchanged // already building, or this build already ended
		}
		cur.Status, cur.Build, cur.Reason = state.ImageBuilding, ev.build.String(), ""
	case ev.status == statusAvailable:
		if cur.AMIID != ev.ami {
			cur.PreviousAMIID = cur.AMIID
		}
		cur.AMIID, cur.AMIBuild = ev.ami, ev.build.String()
		if !ev.build.less(newest) {
			cur.Status, cur.Build, cur.Reason = state.ImageReady, ev.build.String(), ""
		}
	default: // failed, cancelled
		if same && cur.Status == state.ImageFailed {
			return cur, state.ErrUnchanged
		}
		reason := ev.reason
		if reason == "" {
			reason = "image build " + strings.ToLower(ev.status)
		}
		cur.Status, cur.Build, cur.Reason = state.ImageFailed, ev.build.String(), "build "+ev.build.String()+": "+reason
	}
	cur.UpdatedAt = time.Time{} // stamped by the store with the write's time
	return cur, nil
}

// amiIn is the AMI the image distributed to region, or "".
func amiIn(img *ibtypes.Image, region string) string {
	if img.OutputResources == nil {
		return ""
	}
	for _, a := range img.OutputResources.Amis {
		if aws.ToString(a.Region) == region && aws.ToString(a.Image) != "" {
			return aws.ToString(a.Image)
		}
	}
	return ""
}

// build is an image build version, "1.0.1/3": the recipe's semantic version and the build number.
type build struct{ major, minor, patch, n int }

func (b build) String() string {
	if b == (build{}) {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d/%d", b.major, b.minor, b.patch, b.n)
}

func (b build) less(o build) bool {
	switch {
	case b.major != o.major:
		return b.major < o.major
	case b.minor != o.minor:
		return b.minor < o.minor
	case b.patch != o.patch:
		return b.patch < o.patch
	}
	return b.n < o.n
}

// parseBuild reads the build version of an image build version ARN:
// arn:aws:imagebuilder:us-east-1:123456789012:image/spotrunner-linux-x64/1.0.1/3.
func parseBuild(arn string) (build, error) {
	_, res, ok := strings.Cut(arn, ":image/")
	parts := strings.Split(res, "/")
	if !ok || len(parts) != 3 {
		return build{}, fmt.Errorf("%q is not an image build version ARN", arn)
	}
	b, ok := parseVersion(parts[1] + "/" + parts[2])
	if !ok {
		return build{}, fmt.Errorf("%q has no build version", arn)
	}
	return b, nil
}

// parseVersion reads "1.0.1/3"; the zero build (older than any) when s is empty or malformed.
func parseVersion(s string) (build, bool) {
	sem, n, ok := strings.Cut(s, "/")
	v := strings.Split(sem, ".")
	if !ok || len(v) != 3 {
		return build{}, false
	}
	var nums [4]int
	for i, p := range append(v, n) {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 {
			return build{}, false
		}
		nums[i] = x
	}
	return build{nums[0], nums[1], nums[2], nums[3]}, true
}
