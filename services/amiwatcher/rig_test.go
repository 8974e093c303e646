package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/spotrunner/spotrunner/internal/world"
	"github.com/spotrunner/spotrunner/libs/state"
)

const account = "123456789012"

// rig is one watcher against its own state table and SSM prefix in moto, and a fake Image
// Builder with this stack's two pipelines (and one of another stack).
type rig struct {
	t        *testing.T
	h        *Handler
	ib       *fakeImageBuilder
	store    *state.Store
	ssm      *world.SSM
	x64, arm string // this stack's pipelines
	foreign  string // another stack's pipeline
}

func newRig(t *testing.T) *rig {
	t.Helper()
	cfg := world.AWS(t)
	r := &rig{t: t, ib: newFakeImageBuilder(), ssm: world.NewSSM(cfg)}
	r.store = state.New(world.NewDynamoDB(cfg), world.StateTable(t, cfg))
	r.x64, r.arm = r.ib.addPipeline(account, "linux-x64"), r.ib.addPipeline(account, "linux-arm64")
	r.foreign = r.ib.addPipeline("210987654321", "linux-x64")
	r.h = &Handler{
		jobs: r.store, images: r.ib, ssm: r.ssm,
		pipelines: map[string]string{r.x64: "linux-x64", r.arm: "linux-arm64"},
		prefix:    "/" + strings.ToLower(world.Name(t, "presets")) + "/", region: "us-east-1",
		client: &http.Client{Timeout: 5 * time.Second}, margin: time.Second,
	}
	return r
}

// event is testdata file name with its placeholders replaced, e.g. IMAGE_ARN.
func event(t *testing.T, name string, replace ...string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return json.RawMessage(strings.NewReplacer(replace...).Replace(string(b)))
}

// send hands the testdata event name about image (or AMI) arn to the watcher.
func (r *rig) send(name, arn string) {
	r.t.Helper()
	if err := r.h.Handle(context.Background(), event(r.t, name, "IMAGE_ARN", arn, "AMI_ID", arn)); err != nil {
		r.t.Fatalf("%s %s: %v", name, arn, err)
	}
}

func (r *rig) preset(name string) state.PresetImage {
	r.t.Helper()
	p, err := r.store.PresetImage(context.Background(), name)
	if err != nil {
		r.t.Fatalf("preset %s: %v", name, err)
	}
	return p
}

// published is the AMI id in the preset's SSM parameter, "" when there is none.
func (r *rig) published(preset string) string {
	r.t.Helper()
	out, err := r.ssm.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(r.h.prefix + preset + "/ami")})
	if err != nil {
		return ""
	}
	return aws.ToString(out.Parameter.Value)
}
