package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	ibtypes "github.com/aws/aws-sdk-go-v2/service/imagebuilder/types"

	"github.com/spotrunner/spotrunner/libs/state"
)

// responseURL stands in for CloudFormation's pre-signed S3 URL: it records every answer PUT to it
// and refuses what S3 would refuse for a URL signed without a content type (a Content-Type header).
type responseURL struct {
	*httptest.Server
	mu      sync.Mutex
	answers []cfnResponse
}

func newResponseURL(t *testing.T) *responseURL {
	rs := &responseURL{}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPut || req.Header.Get("Content-Type") != "" || req.ContentLength <= 0 {
			http.Error(w, "SignatureDoesNotMatch", http.StatusForbidden)
			return
		}
		var a cfnResponse
		body, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(body, &a); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		rs.mu.Lock()
		rs.answers = append(rs.answers, a)
		rs.mu.Unlock()
	}))
	t.Cleanup(rs.Close)
	return rs
}

func (rs *responseURL) got() []cfnResponse {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]cfnResponse(nil), rs.answers...)
}

// request is testdata/cfn-create.json turned into requestType, for this rig's pipeline.
func (r *rig) request(rs *responseURL, requestType, requestID string, old *firstBuildProps) json.RawMessage {
	r.t.Helper()
	raw := event(r.t, "cfn-create.json", "RESPONSE_URL", rs.URL+"/cfn-response?X-Amz-Signature=abc", "REQUEST_ID", requestID, "PIPELINE_ARN", r.x64)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		r.t.Fatal(err)
	}
	m["RequestType"] = requestType
	if requestType != "Create" {
		m["PhysicalResourceId"] = "first-image-build-linux-x64"
	}
	if old != nil {
		m["OldResourceProperties"] = old
	}
	out, _ := json.Marshal(m)
	return out
}

// TestFirstBuild (local world: moto's DynamoDB, the fake Image Builder, a local HTTP server as the
// response URL): each custom resource request is answered exactly once with the status written
// down, the pipeline started only where written down, and the preset record as written down.
func TestFirstBuild(t *testing.T) {
	t.Parallel()
	sameProps := &firstBuildProps{Preset: "linux-x64", RecipeArn: "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/spotrunner-linux-x64/1.0.1"}
	newRecipe := &firstBuildProps{Preset: "linux-x64", RecipeArn: "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/spotrunner-linux-x64/1.0.0"}
	tests := []struct {
		name        string
		setup       func(r *rig)
		requestType string
		old         func(r *rig) *firstBuildProps
		deadline    time.Duration
		wantStatus  string
		wantReason  string
		wantStarted int
		wantPreset  string // status of the record, "" for none
	}{
		{name: "create starts the first build", requestType: "Create", wantStatus: "SUCCESS", wantStarted: 1, wantPreset: "building"},
		{name: "update with the same pipeline and recipe does nothing", requestType: "Update",
			old: func(r *rig) *firstBuildProps { p := *sameProps; p.PipelineArn = r.x64; return &p }, wantStatus: "SUCCESS"},
		{name: "update to a new recipe builds again", requestType: "Update",
			old: func(r *rig) *firstBuildProps { p := *newRecipe; p.PipelineArn = r.x64; return &p }, wantStatus: "SUCCESS", wantStarted: 1, wantPreset: "building"},
		{name: "delete touches nothing", requestType: "Delete", wantStatus: "SUCCESS"},
		{name: "a build already running is not an error", requestType: "Create",
			setup: func(r *rig) {
				r.ib.startErr = &ibtypes.ResourceInUseException{Message: awsString("execution in progress")}
			},
			wantStatus: "SUCCESS", wantPreset: "building"},
		{name: "internal error still answers FAILED with the reason", requestType: "Create",
			setup: func(r *rig) {
				r.ib.startErr = errors.New("AccessDeniedException: not authorized to perform imagebuilder:StartImagePipelineExecution")
			},
			wantStatus: "FAILED", wantReason: "not authorized to perform imagebuilder:StartImagePipelineExecution", wantPreset: "building"},
		{name: "a panic still answers FAILED", requestType: "Create",
			setup:      func(r *rig) { r.ib.startHook = func(context.Context) { panic("boom") } },
			wantStatus: "FAILED", wantReason: "internal error: boom", wantPreset: "building"},
		{name: "a slow dependency is answered before the deadline", requestType: "Create", deadline: 2500 * time.Millisecond,
			setup:      func(r *rig) { r.ib.startHook = func(ctx context.Context) { <-ctx.Done() } },
			wantStatus: "FAILED", wantReason: "context deadline exceeded", wantPreset: "building"},
		{name: "a pipeline not of this stack fails", requestType: "Create",
			setup:      func(r *rig) { r.h.pipelines = map[string]string{r.arm: "linux-arm64"} },
			wantStatus: "FAILED", wantReason: "is not preset \"linux-x64\"'s pipeline in this stack"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			rs := newResponseURL(t)
			if tt.setup != nil {
				tt.setup(r)
			}
			var old *firstBuildProps
			if tt.old != nil {
				old = tt.old(r)
			}
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			if err := r.h.Handle(ctx, r.request(rs, tt.requestType, "5f3c2e1a-8b7d-4c6e-9a0f-1b2c3d4e5f60", old)); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if dl, ok := ctx.Deadline(); ok && time.Now().After(dl) {
				t.Errorf("answered %s after the invocation's deadline", time.Since(dl))
			}
			answers := rs.got()
			if len(answers) != 1 {
				t.Fatalf("%d answers, want exactly 1: %+v", len(answers), answers)
			}
			a := answers[0]
			if a.Status != tt.wantStatus || !strings.Contains(a.Reason, tt.wantReason) {
				t.Errorf("answer %s %q, want %s containing %q", a.Status, a.Reason, tt.wantStatus, tt.wantReason)
			}
			if diff := cmp.Diff([]string{"first-image-build-linux-x64", "FirstBuildLinuxX64", "5f3c2e1a-8b7d-4c6e-9a0f-1b2c3d4e5f60"},
				[]string{a.PhysicalResourceID, a.LogicalResourceID, a.RequestID}); diff != "" {
				t.Errorf("answer ids (-want +got):\n%s", diff)
			}
			if n := len(r.ib.started()); n != tt.wantStarted {
				t.Errorf("%d pipeline executions started, want %d", n, tt.wantStarted)
			}
			p, err := r.store.PresetImage(context.Background(), "linux-x64")
			if got := map[bool]string{true: p.Status, false: ""}[err == nil]; got != tt.wantPreset {
				t.Errorf("preset record %q (%v), want %q", got, err, tt.wantPreset)
			}
		})
	}
}

// TestFirstBuildRetried (local world): CloudFormation sends the same Create again (its retry after
// a lost answer): it is answered again, and the pipeline started once.
func TestFirstBuildRetried(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	rs := newResponseURL(t)
	for range 2 {
		if err := r.h.Handle(context.Background(), r.request(rs, "Create", "7a6b5c4d-3e2f-1a0b-9c8d-7e6f5a4b3c2d", nil)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(rs.got()); n != 2 {
		t.Errorf("%d answers, want 2", n)
	}
	if n := len(r.ib.started()); n != 1 {
		t.Errorf("%d executions, want 1", n)
	}
}

func awsString(s string) *string { return &s }

// ownAMIRequest is a Custom::PresetAmi request for preset with ami (and old, on an update).
func (r *rig) ownAMIRequest(rs *responseURL, requestType, preset, ami string, old *firstBuildProps) json.RawMessage {
	r.t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.request(rs, requestType, "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a", old), &m); err != nil {
		r.t.Fatal(err)
	}
	m["ResourceType"], m["LogicalResourceId"] = "Custom::PresetAmi", "OwnAmi"
	m["ResourceProperties"] = map[string]string{"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f", "Preset": preset, "Ami": ami}
	out, _ := json.Marshal(m)
	return out
}

// TestOwnAMI (local world: moto's DynamoDB and SSM): a preset that brings its own AMI is ready with
// it as soon as CloudFormation creates its custom resource, an update to another AMI keeps the old
// one as the previous, and what cannot be right is answered FAILED without touching the record.
func TestOwnAMI(t *testing.T) {
	t.Parallel()
	const ami1, ami2 = "ami-0123456789abcdef0", "ami-0fedcba9876543210"
	tests := []struct {
		name         string
		steps        [][3]string // request type, preset, AMI
		wantStatus   string
		wantReason   string
		wantRecord   state.PresetImage // Name, Status, AMIID, PreviousAMIID
		wantNoRecord bool
	}{
		{name: "create makes the preset ready", steps: [][3]string{{"Create", "own", ami1}},
			wantStatus: "SUCCESS", wantRecord: state.PresetImage{Name: "own", Status: "ready", AMIID: ami1}},
		{name: "update to another AMI keeps the old as previous", steps: [][3]string{{"Create", "own", ami1}, {"Update", "own", ami2}},
			wantStatus: "SUCCESS", wantRecord: state.PresetImage{Name: "own", Status: "ready", AMIID: ami2, PreviousAMIID: ami1}},
		{name: "update to the same AMI changes nothing", steps: [][3]string{{"Create", "own", ami1}, {"Update", "own", ami1}},
			wantStatus: "SUCCESS", wantRecord: state.PresetImage{Name: "own", Status: "ready", AMIID: ami1}},
		{name: "delete leaves the record", steps: [][3]string{{"Create", "own", ami1}, {"Delete", "own", ami1}},
			wantStatus: "SUCCESS", wantRecord: state.PresetImage{Name: "own", Status: "ready", AMIID: ami1}},
		{name: "not an AMI id", steps: [][3]string{{"Create", "own", "ami-xyz"}},
			wantStatus: "FAILED", wantReason: `Ami "ami-xyz" is not an AMI id`, wantNoRecord: true},
		{name: "a preset with a pipeline cannot name an AMI", steps: [][3]string{{"Create", "linux-x64", ami1}},
			wantStatus: "FAILED", wantReason: "builds its image in this stack", wantNoRecord: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			var old *firstBuildProps
			var last cfnResponse
			for _, s := range tt.steps {
				rs := newResponseURL(t)
				if err := r.h.Handle(context.Background(), r.ownAMIRequest(rs, s[0], s[1], s[2], old)); err != nil {
					t.Fatalf("Handle %s: %v", s[0], err)
				}
				answers := rs.got()
				if len(answers) != 1 {
					t.Fatalf("%s: %d answers, want 1", s[0], len(answers))
				}
				last, old = answers[0], &firstBuildProps{Preset: s[1], Ami: s[2]}
			}
			if last.Status != tt.wantStatus || !strings.Contains(last.Reason, tt.wantReason) {
				t.Errorf("answer %s %q, want %s containing %q", last.Status, last.Reason, tt.wantStatus, tt.wantReason)
			}
			preset := tt.steps[0][1]
			got, err := r.store.PresetImage(context.Background(), preset)
			if tt.wantNoRecord {
				if err == nil {
					t.Errorf("preset %s recorded %+v, want no record", preset, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantRecord, state.PresetImage{Name: got.Name, Status: got.Status, AMIID: got.AMIID, PreviousAMIID: got.PreviousAMIID}); diff != "" {
				t.Errorf("preset record (-want +got):\n%s", diff)
			}
			if pub := r.published(preset); pub != tt.wantRecord.AMIID {
				t.Errorf("published AMI %q, want %q", pub, tt.wantRecord.AMIID)
			}
			if n := len(r.ib.started()); n != 0 {
				t.Errorf("%d pipeline executions started, want none", n)
			}
		})
	}
}
