package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/imagebuilder"
	ibtypes "github.com/aws/aws-sdk-go-v2/service/imagebuilder/types"

	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/state"
)

// cfnRequest is a CloudFormation custom resource request (Custom::FirstImageBuild for a preset
// that builds its image, Custom::PresetAmi for one that brings its own AMI).
type cfnRequest struct {
	RequestType           string           `json:"RequestType"` // Create | Update | Delete
	ResponseURL           string           `json:"ResponseURL"`
	StackID               string           `json:"StackId"`
	RequestID             string           `json:"RequestId"`
	LogicalResourceID     string           `json:"LogicalResourceId"`
	PhysicalResourceID    string           `json:"PhysicalResourceId"`
	ResourceProperties    firstBuildProps  `json:"ResourceProperties"`
	OldResourceProperties *firstBuildProps `json:"OldResourceProperties"`
}

// firstBuildProps are the custom resource's properties: one per preset, with either its pipeline
// and recipe or its own AMI.
type firstBuildProps struct {
	Preset      string `json:"Preset"`
	PipelineArn string `json:"PipelineArn"`
	RecipeArn   string `json:"RecipeArn"` // a new recipe version is a new ARN: build again
	Ami         string `json:"Ami"`       // the preset's own AMI (presets.yaml ami)
}

// amiID is an AMI id as EC2 writes them.
var amiID = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)

// cfnResponse is the answer CloudFormation waits for at the request's pre-signed ResponseURL.
type cfnResponse struct {
	Status             string            `json:"Status"` // SUCCESS | FAILED
	Reason             string            `json:"Reason,omitempty"`
	PhysicalResourceID string            `json:"PhysicalResourceId"`
	StackID            string            `json:"StackId"`
	RequestID          string            `json:"RequestId"`
	LogicalResourceID  string            `json:"LogicalResourceId"`
	Data               map[string]string `json:"Data,omitempty"`
}

// firstBuild answers a custom resource request, always, before the function's deadline:
//   - Create, or Update to another pipeline or recipe: the preset is recorded as building and its
//     pipeline's first execution started, so a fresh deployment has AMIs within the hour instead
//     of at the next weekly run; jobs queued meanwhile wait for it (the provisioner's NO_AMI_WAIT);
//   - Create or Update of a preset that brings its own AMI: the preset is ready with it at once
//     (the AMI it had stays as the previous one) and the AMI is published like a built one;
//   - Update with the same pipeline and recipe (or AMI): nothing to do;
//   - Delete: success, touching nothing (the preset's record and AMIs are not the resource's).
//
// Any failure, a panic included, is answered FAILED with the reason, so a stack never waits an
// hour for an answer that will not come.
func (h *Handler) firstBuild(ctx context.Context, req cfnRequest) error {
	physical := req.PhysicalResourceID
	if physical == "" {
		physical = "first-image-build-" + req.ResourceProperties.Preset
	}
	ctx = logging.With(ctx, "requestId", req.RequestID)
	work, cancel := context.WithCancel(ctx)
	if deadline, ok := ctx.Deadline(); ok {
		work, cancel = context.WithDeadline(ctx, deadline.Add(-h.margin))
	}
	defer cancel()
	outcome, err := h.firstBuildStep(work, req)
	resp := cfnResponse{
		Status: "SUCCESS", PhysicalResourceID: physical, StackID: req.StackID, RequestID: req.RequestID,
		LogicalResourceID: req.LogicalResourceID, Data: map[string]string{"Preset": req.ResourceProperties.Preset},
	}
	if err != nil {
		resp.Status, resp.Reason = "FAILED", err.Error()
	}
	log := logging.From(ctx)
	ev := log.Info()
	if err != nil {
		ev = log.Error().Err(err)
	}
	ev.Str("requestType", req.RequestType).Str("logicalResourceId", req.LogicalResourceID).Str("outcome", outcome).Msg("custom resource")
	if err := h.respond(ctx, req.ResponseURL, resp); err != nil {
		log.Error().Err(err).Msg("answer CloudFormation")
		return err // Lambda retries the invocation; the work is idempotent
	}
	return nil
}

// firstBuildStep does the work of one request; a panic comes back as an error.
func (h *Handler) firstBuildStep(ctx context.Context, req cfnRequest) (outcome string, err error) {
	defer func() {
		if r := recover(); r != nil {
			outcome, err = "", fmt.Errorf("internal error: %v", r)
		}
	}()
	p := req.ResourceProperties
	switch req.RequestType {
	case "Delete":
		return "nothing to delete: preset records and AMIs stay", nil
	case "Create":
	case "Update":
		if old := req.OldResourceProperties; old != nil && *old == p {
			return "unchanged", nil
		}
	default:
		return "", fmt.Errorf("unknown request type %q", req.RequestType)
	}
	if p.Ami != "" || p.PipelineArn == "" {
		return h.ownAMI(ctx, p)
	}
	preset, ours := h.presetOf(p.PipelineArn)
	if !ours || preset != p.Preset {
		return "", fmt.Errorf("pipeline %q is not preset %q's pipeline in this stack (PIPELINES)", p.PipelineArn, p.Preset)
	}
	if _, err := h.jobs.UpdatePresetImage(ctx, preset, func(cur state.PresetImage, exists bool) (state.PresetImage, error) {
		if exists && cur.Status == state.ImageBuilding {
			return cur, state.ErrUnchanged
		}
		cur.Status, cur.Reason, cur.UpdatedAt = state.ImageBuilding, "", time.Time{}
		return cur, nil
	}); err != nil {
		return "", fmt.Errorf("record preset %s as building: %w", preset, err)
	}
	// The request id is the token: CloudFormation's retry of this request starts nothing twice.
	out, err := h.images.StartImagePipelineExecution(ctx, &imagebuilder.StartImagePipelineExecutionInput{
		ImagePipelineArn: aws.String(p.PipelineArn), ClientToken: aws.String(clientToken(req.RequestID)),
	})
	var inUse *ibtypes.ResourceInUseException
	switch {
	case errors.As(err, &inUse):
		return "preset " + preset + " building: an execution is already running", nil
	case err != nil:
		return "", fmt.Errorf("start the first build of preset %s: %w", preset, err)
	}
	return "preset " + preset + " building: " + aws.ToString(out.ImageBuildVersionArn), nil
}

// ownAMI records a preset's own AMI as its current one.
func (h *Handler) ownAMI(ctx context.Context, p firstBuildProps) (string, error) {
	if !amiID.MatchString(p.Ami) {
		return "", fmt.Errorf("preset %q: Ami %q is not an AMI id (and no PipelineArn is given)", p.Preset, p.Ami)
	}
	for _, preset := range h.pipelines {
		if preset == p.Preset {
			return "", fmt.Errorf("preset %q builds its image in this stack (PIPELINES); it cannot also name an AMI", p.Preset)
		}
	}
	if _, err := h.jobs.UpdatePresetImage(ctx, p.Preset, func(cur state.PresetImage, exists bool) (state.PresetImage, error) {
		if exists && cur.Status == state.ImageReady && cur.AMIID == p.Ami {
			return cur, state.ErrUnchanged
		}
		if cur.AMIID != "" && cur.AMIID != p.Ami {
			cur.PreviousAMIID = cur.AMIID
		}
		cur.AMIID, cur.AMIBuild, cur.Build, cur.Status, cur.Reason = p.Ami, "", "", state.ImageReady, ""
		cur.UpdatedAt = time.Time{} // stamped by the store with the write's time
		return cur, nil
	}); err != nil {
		return "", fmt.Errorf("record preset %s's own AMI: %w", p.Preset, err)
	}
	if err := h.publishAMI(ctx, p.Preset, p.Ami); err != nil {
		return "", err
	}
	return "preset " + p.Preset + " ready with its own AMI " + p.Ami, nil
}

// clientToken fits a request id into Image Builder's 1–36 characters.
func clientToken(requestID string) string {
	if len(requestID) > 36 {
		return requestID[:36]
	}
	if requestID == "" {
		return "spotrunner-first-build"
	}
	return requestID
}

// respond PUTs the answer to the pre-signed URL (an S3 object). The URL is signed without a
// content type, so none is sent. Tried three times, within ctx.
func (h *Handler) respond(ctx context.Context, url string, resp cfnResponse) error {
	if len(resp.Reason) > 1000 {
		resp.Reason = resp.Reason[:1000] // CloudFormation shows the reason; the whole answer must stay under 4 KB
	}
	body, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	var last error
	for try := range 3 {
		if try > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(last, ctx.Err())
			case <-time.After(time.Duration(try) * time.Second):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("answer CloudFormation: %w", err)
		}
		req.ContentLength = int64(len(body))
		res, err := h.client.Do(req)
		if err != nil {
			last = fmt.Errorf("answer CloudFormation: %w", err)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		if res.StatusCode/100 == 2 {
			return nil
		}
		last = fmt.Errorf("answer CloudFormation: HTTP %d", res.StatusCode)
		if res.StatusCode/100 == 4 {
			return last // an expired or wrong URL: retrying cannot help
		}
	}
	return last
}
