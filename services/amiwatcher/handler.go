package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/state"
)

// Handler is the AMI watcher: EventBridge events of Image Builder and EC2, and the deploy-time
// custom resource, against the preset records of the state table.
type Handler struct {
	jobs      *state.Store
	images    ImageBuilder
	ssm       SSM
	pipelines map[string]string // pipeline ARN -> preset name, this stack's only
	prefix    string            // preset parameters, e.g. /spotrunner/presets/
	region    string
	client    *http.Client // CloudFormation responses
	margin    time.Duration
}

// envelope is the part of an invocation that says what it is: an EventBridge event (source,
// detail-type) or a CloudFormation custom resource request (RequestType).
type envelope struct {
	Source      string          `json:"source"`
	DetailType  string          `json:"detail-type"`
	Resources   []string        `json:"resources"`
	Detail      json.RawMessage `json:"detail"`
	RequestType string          `json:"RequestType"`
}

// Event types handled.
const (
	imageStateChangeType = "EC2 Image Builder Image State Change"
	amiStateChangeType   = "EC2 AMI State Change"
)

// Handle dispatches one invocation and logs its outcome once. An EventBridge event that failed
// returns the error, so Lambda's asynchronous retries try it again; a custom resource request
// always gets its answer to CloudFormation (firstBuild) and never returns an error unless that
// answer could not be sent.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) error {
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		logging.From(ctx).Error().Err(err).Msg("invocation is not JSON: dropped")
		return nil // retrying cannot help
	}
	if env.RequestType != "" {
		var req cfnRequest
		if err := json.Unmarshal(raw, &req); err != nil {
			logging.From(ctx).Error().Err(err).Msg("custom resource request unreadable: dropped")
			return nil
		}
		return h.firstBuild(ctx, req)
	}
	outcome, err := h.event(ctx, env)
	ev := logging.From(ctx).Info()
	if err != nil {
		ev = logging.From(ctx).Error().Err(err)
	}
	ev.Str("detailType", env.DetailType).Strs("resources", env.Resources).Str("outcome", outcome).Msg("event")
	return err
}

func (h *Handler) event(ctx context.Context, env envelope) (string, error) {
	switch {
	case env.Source == "aws.imagebuilder" && env.DetailType == imageStateChangeType:
		var ch imageStateChange
		if err := json.Unmarshal(env.Detail, &ch); err != nil || len(env.Resources) != 1 {
			return fmt.Sprintf("ignored: malformed image state change (%d resources, %v)", len(env.Resources), err), nil
		}
		return h.image(ctx, env.Resources[0], ch)
	case env.Source == "aws.ec2" && env.DetailType == amiStateChangeType:
		var ch amiStateChange
		if err := json.Unmarshal(env.Detail, &ch); err != nil || ch.ImageID == "" {
			return fmt.Sprintf("ignored: malformed AMI state change (%v)", err), nil
		}
		return h.amiGone(ctx, ch)
	}
	return "ignored: " + env.Source + " " + env.DetailType + " is not handled here", nil
}

// presetOf is the preset of one of this stack's pipelines.
func (h *Handler) presetOf(pipelineARN string) (string, bool) {
	p, ok := h.pipelines[pipelineARN]
	return p, ok
}

// presetNames are this stack's presets, sorted.
func (h *Handler) presetNames() []string {
	var names []string
	for _, p := range h.pipelines {
		names = append(names, p)
	}
	slices.Sort(names)
	return names
}
