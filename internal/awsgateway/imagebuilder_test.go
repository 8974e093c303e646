package awsgateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/imagebuilder"
	ibtypes "github.com/aws/aws-sdk-go-v2/service/imagebuilder/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/ec2world"
	"github.com/spotrunner/spotrunner/internal/world"
)

// seenEvent is one Image Builder event the gateway reported, with GetImage's answer for its
// image asked while the event was being delivered (the AMI watcher asks GetImage on each event,
// so the two must agree at that moment).
type seenEvent struct {
	raw      []byte
	image    string // resources[0]
	status   string // detail.state.status
	getImage *ibtypes.Image
	getErr   error
}

// imageEvents records the events of one gateway.
type imageEvents struct {
	client *imagebuilder.Client
	mu     sync.Mutex
	events []seenEvent
}

// handle is the gateway's OnImageEvent. It never fails the test itself: it may run while the
// gateway closes; wait reports what it recorded.
func (r *imageEvents) handle(raw []byte) {
	var ev struct {
		Resources []string
		Detail    struct {
			State struct{ Status string } `json:"state"`
		}
	}
	s := seenEvent{raw: raw}
	if err := json.Unmarshal(raw, &ev); err != nil || len(ev.Resources) != 1 {
		s.getErr = fmt.Errorf("event %s: not one image (%v)", raw, err)
	} else {
		s.image, s.status = ev.Resources[0], ev.Detail.State.Status
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := r.client.GetImage(ctx, &imagebuilder.GetImageInput{ImageBuildVersionArn: aws.String(s.image)})
		cancel()
		if s.getErr = err; err == nil {
			s.getImage = out.Image
		}
	}
	r.mu.Lock()
	r.events = append(r.events, s)
	r.mu.Unlock()
}

// wait returns the events of image once its build has ended (AVAILABLE or FAILED), and fails
// the test after 30 s or on an event it could not read.
func (r *imageEvents) wait(t *testing.T, image string) []seenEvent {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		var got []seenEvent
		for _, s := range r.events {
			if s.getErr != nil {
				t.Fatalf("event: %v", s.getErr)
			}
			if s.image == image {
				got = append(got, s)
			}
		}
		r.mu.Unlock()
		if n := len(got); n > 0 && (got[n-1].status == statusAvailable || got[n-1].status == statusFailed) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("image %s: events %v after 30 s, want its build to end", image, statuses(got))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func statuses(events []seenEvent) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.status)
	}
	return out
}

var (
	eventIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	amiIDPattern   = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
)

// checkEvent compares an event with the amiwatcher's example of that status
// (services/amiwatcher/testdata/image-<file>.json) for image, with previous-state previous (the
// gateway's builds go PENDING, BUILDING, then a result: no TESTING or DISTRIBUTING). Its id and
// time must be in EventBridge's formats.
func checkEvent(t *testing.T, raw []byte, file, image, previous string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(world.Root(), "services", "amiwatcher", "testdata", "image-"+file+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var want, got map[string]any
	if err := json.Unmarshal([]byte(strings.ReplaceAll(string(b), "IMAGE_ARN", image)), &want); err != nil {
		t.Fatal(err)
	}
	want["detail"].(map[string]any)["previous-state"] = map[string]any{"status": previous}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if id, _ := got["id"].(string); !eventIDPattern.MatchString(id) {
		t.Errorf("event id %q, want a UUID", id)
	}
	ts, _ := got["time"].(string)
	if _, err := time.Parse(time.RFC3339, ts); err != nil {
		t.Errorf("event time %q, want RFC 3339: %v", ts, err)
	}
	for _, m := range []map[string]any{want, got} {
		delete(m, "id")
		delete(m, "time")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s event (-want +got):\n%s", file, diff)
	}
}

// startImageWorld starts a gateway in front of moto whose Image Builder events go to the
// returned recorder, which asks GetImage through the gateway on each.
func startImageWorld(t *testing.T) (*Gateway, *imagebuilder.Client, *imageEvents) {
	t.Helper()
	g, cfg := startWorld(t, Options{BuildTime: 20 * time.Millisecond})
	rec := &imageEvents{client: imagebuilder.NewFromConfig(cfg)}
	g.SetImageEventHandler(rec.handle)
	return g, rec.client, rec
}

// start starts pipeline's execution with token through client and returns the image's ARN.
func start(t *testing.T, client *imagebuilder.Client, pipeline, token string) string {
	t.Helper()
	out, err := client.StartImagePipelineExecution(context.Background(), &imagebuilder.StartImagePipelineExecutionInput{
		ImagePipelineArn: aws.String(pipeline), ClientToken: aws.String(token),
	})
	if err != nil {
		t.Fatalf("start %s: %v", pipeline, err)
	}
	if got := aws.ToString(out.ClientToken); got != token {
		t.Errorf("answered client token %q, want %q", got, token)
	}
	return aws.ToString(out.ImageBuildVersionArn)
}

// TestWorldImageBuilder (local world): fixtures are a pipeline per architecture added to a
// gateway in front of moto, the real SDK Image Builder client, and an event handler that asks
// GetImage on each event as the AMI watcher does. A started execution must report BUILDING,
// then AVAILABLE, as events shaped as services/amiwatcher/testdata's, with GetImage agreeing at
// each; its AMI must be a real one in moto, of the pipeline's architecture, tagged with the
// image's ARN; GetImage must name the source pipeline, the version and the AMI. A second start
// with the same client token must answer the same image without building it again (the next
// token's build is number 2).
func TestWorldImageBuilder(t *testing.T) {
	t.Parallel()
	moto := ec2world.Client(t)
	for _, tt := range []struct{ preset, arch string }{{"linux-x64", "x86_64"}, {"linux-arm64", "arm64"}} {
		t.Run(tt.arch, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g, client, rec := startImageWorld(t)
			name := "spotrunner-" + tt.preset
			pipeline := g.AddPipeline(tt.preset, name, tt.arch)
			if want := "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/" + name; pipeline != want {
				t.Errorf("AddPipeline = %s, want %s", pipeline, want)
			}

			token := rand.Text()
			image := start(t, client, pipeline, token)
			if want := "arn:aws:imagebuilder:us-east-1:123456789012:image/" + name + "/1.0.0/1"; image != want {
				t.Errorf("image %s, want %s", image, want)
			}
			if again := start(t, client, pipeline, token); again != image {
				t.Errorf("second start with the token answered %s, want %s", again, image)
			}

			events := rec.wait(t, image)
			if diff := cmp.Diff([]string{statusBuilding, statusAvailable}, statuses(events)); diff != "" {
				t.Fatalf("events (-want +got):\n%s", diff)
			}
			checkEvent(t, events[0].raw, "building", image, "PENDING")
			checkEvent(t, events[1].raw, "available", image, statusBuilding)
			if got := events[0].getImage; got.State == nil || got.State.Status != ibtypes.ImageStatusBuilding || got.OutputResources != nil {
				t.Errorf("GetImage at the BUILDING event: state %+v, outputs %+v; want BUILDING and no AMI", got.State, got.OutputResources)
			}

			out, err := client.GetImage(ctx, &imagebuilder.GetImageInput{ImageBuildVersionArn: aws.String(image)})
			if err != nil {
				t.Fatal(err)
			}
			img := out.Image
			var ami string
			if img.OutputResources != nil && len(img.OutputResources.Amis) == 1 {
				ami = aws.ToString(img.OutputResources.Amis[0].Image)
			}
			type summary struct{ Arn, Pipeline, Version, Status, Region string }
			got := summary{aws.ToString(img.Arn), aws.ToString(img.SourcePipelineArn), aws.ToString(img.Version), "", ""}
			if img.State != nil {
				got.Status = string(img.State.Status)
			}
			if ami != "" {
				got.Region = aws.ToString(img.OutputResources.Amis[0].Region)
			}
			want := summary{image, pipeline, "1.0.0/1", "AVAILABLE", "us-east-1"}
			if diff := cmp.Diff(want, got); diff != "" || !amiIDPattern.MatchString(ami) {
				t.Errorf("GetImage: AMI %q, (-want +got):\n%s", ami, diff)
			}
			if atEvent := events[1].getImage; asJSON(t, atEvent) != asJSON(t, img) {
				t.Errorf("GetImage at the AVAILABLE event differs from after it:\n%s\n%s", asJSON(t, atEvent), asJSON(t, img))
			}

			d, err := moto.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{ami}})
			if err != nil || len(d.Images) != 1 {
				t.Fatalf("DescribeImages %s in moto: %v (%d images)", ami, err, len(d.Images))
			}
			tags := map[string]string{}
			for _, tag := range d.Images[0].Tags {
				tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
			}
			wantTags := map[string]string{"Ec2ImageBuilderArn": image, "spotrunner:managed": "true", "spotrunner:preset": tt.preset}
			if diff := cmp.Diff(wantTags, tags); diff != "" || string(d.Images[0].Architecture) != tt.arch || d.Images[0].State != ec2types.ImageStateAvailable {
				t.Errorf("AMI %s in moto: architecture %s, state %s, tags (-want +got):\n%s", ami, d.Images[0].Architecture, d.Images[0].State, diff)
			}

			next := start(t, client, pipeline, rand.Text())
			if want := "arn:aws:imagebuilder:us-east-1:123456789012:image/" + name + "/1.0.0/2"; next != want {
				t.Errorf("next token's image %s, want %s (the repeated token must not have built)", next, want)
			}
			if got := statuses(rec.wait(t, next)); !cmp.Equal(got, []string{statusBuilding, statusAvailable}) {
				t.Errorf("next build's events %v", got)
			}
		})
	}
}

// TestWorldImageBuilderFailNextBuild (local world): fixtures are an x86_64 pipeline and
// FailNextBuild with the reason of services/amiwatcher/testdata/image-failed.json. The next build
// must report BUILDING, then FAILED with that reason (the example's event, previous-state
// BUILDING), with GetImage answering FAILED, the reason and no AMI, and no AMI in moto tagged
// with its ARN; the build after it must be AVAILABLE again.
func TestWorldImageBuilderFailNextBuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	moto := ec2world.Client(t)
	g, client, rec := startImageWorld(t)
	pipeline := g.AddPipeline("linux-x64", "spotrunner-linux-x64", "x86_64")
	const reason = "Image Builder failed to run tests: test component spotrunner-linux-x64-runner exited with code 1"
	g.FailNextBuild(pipeline, reason)

	image := start(t, client, pipeline, rand.Text())
	events := rec.wait(t, image)
	if diff := cmp.Diff([]string{statusBuilding, statusFailed}, statuses(events)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	checkEvent(t, events[1].raw, "failed", image, statusBuilding)
	out, err := client.GetImage(ctx, &imagebuilder.GetImageInput{ImageBuildVersionArn: aws.String(image)})
	if err != nil {
		t.Fatal(err)
	}
	if s := out.Image.State; s == nil || s.Status != ibtypes.ImageStatusFailed || aws.ToString(s.Reason) != reason || out.Image.OutputResources != nil {
		t.Errorf("GetImage: state %+v, outputs %+v; want FAILED, the reason, no AMI", s, out.Image.OutputResources)
	}
	d, err := moto.DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:Ec2ImageBuilderArn"), Values: []string{image}}}})
	if err != nil || len(d.Images) != 0 {
		t.Errorf("AMIs of the failed build in moto: %v, %v; want none", d, err)
	}

	next := start(t, client, pipeline, rand.Text())
	if got := statuses(rec.wait(t, next)); !cmp.Equal(got, []string{statusBuilding, statusAvailable}) {
		t.Errorf("the build after the failed one: events %v, want BUILDING, AVAILABLE", got)
	}
}

// TestImageBuilderRefusals: fixtures are a fake moto, one pipeline whose builds take an hour
// (none ends during the test) and the real SDK client. Requests Image Builder refuses must be
// refused with its codes and statuses: an unknown image or pipeline (404
// ResourceNotFoundException), a malformed ARN or client token (400 InvalidRequestException),
// a client token reused for another pipeline (400 IdempotentParameterMismatchException).
// AddPipeline must panic on a name or architecture the setup got wrong.
func TestImageBuilderRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	moto := newFakeMoto(t)
	g, err := Start(ctx, Options{MotoURL: moto.URL, BuildTime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	client := imagebuilder.NewFromConfig(testConfig(g.URL()))
	pipeline := g.AddPipeline("linux-x64", "spotrunner-linux-x64", "x86_64")
	other := g.AddPipeline("linux-arm64", "spotrunner-linux-arm64", "arm64")
	if again := g.AddPipeline("linux-x64", "spotrunner-linux-x64", "x86_64"); again != pipeline {
		t.Errorf("AddPipeline again = %s, want %s", again, pipeline)
	}
	token := rand.Text()
	start(t, client, pipeline, token)

	getImage := func(arn string) error {
		_, err := client.GetImage(ctx, &imagebuilder.GetImageInput{ImageBuildVersionArn: aws.String(arn)})
		return err
	}
	startWith := func(arn, token string) error {
		_, err := client.StartImagePipelineExecution(ctx, &imagebuilder.StartImagePipelineExecutionInput{ImagePipelineArn: aws.String(arn), ClientToken: aws.String(token)})
		return err
	}
	unknownImage := "arn:aws:imagebuilder:us-east-1:123456789012:image/spotrunner-linux-x64/1.0.0/7"
	unknownPipeline := "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/nothing"
	tests := []struct {
		name    string
		err     error
		status  int
		code    string
		message string
	}{
		{"unknown image", getImage(unknownImage), http.StatusNotFound, "ResourceNotFoundException", "The resource " + unknownImage + " could not be found."},
		{"malformed image ARN", getImage("arn:aws:imagebuilder:us-east-1:123456789012:image/x"), http.StatusBadRequest, "InvalidRequestException", ""},
		{"unknown pipeline", startWith(unknownPipeline, rand.Text()), http.StatusNotFound, "ResourceNotFoundException", "The resource " + unknownPipeline + " could not be found."},
		{"malformed pipeline ARN", startWith("arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/Upper", rand.Text()), http.StatusBadRequest, "InvalidRequestException", ""},
		{"client token of 37 characters", startWith(pipeline, strings.Repeat("t", 37)), http.StatusBadRequest, "InvalidRequestException", "clientToken must be 1 to 36 characters long"},
		{"client token reused for another pipeline", startWith(other, token), http.StatusBadRequest, "IdempotentParameterMismatchException", "The client token " + token + " was used before with a different request."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAPIError(t, tt.err, tt.status, tt.code, tt.message)
		})
	}

	for name, add := range map[string]func(){
		"upper-case name":       func() { g.AddPipeline("p", "Spotrunner Linux", "x86_64") },
		"unknown architecture":  func() { g.AddPipeline("p", "spotrunner-p", "i386") },
		"FailNextBuild unknown": func() { g.FailNextBuild(unknownPipeline, "r") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			add()
		}()
	}
}

// TestCloseStopsBuilds: fixtures are a fake moto and a build that takes an hour. Close must
// return at once, after the BUILDING event and without a result event or a call to moto (the
// AMI is never registered).
func TestCloseStopsBuilds(t *testing.T) {
	t.Parallel()
	moto := newFakeMoto(t)
	var mu sync.Mutex
	var got []string
	g, err := Start(context.Background(), Options{MotoURL: moto.URL, BuildTime: time.Hour, OnImageEvent: func(ev []byte) {
		var e struct {
			Detail struct {
				State struct{ Status string } `json:"state"`
			}
		}
		_ = json.Unmarshal(ev, &e)
		mu.Lock()
		got = append(got, e.Detail.State.Status)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	pipeline := g.AddPipeline("linux-x64", "spotrunner-linux-x64", "x86_64")
	start(t, imagebuilder.NewFromConfig(testConfig(g.URL())), pipeline, rand.Text())

	done := make(chan error, 1)
	go func() { done <- g.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5 s of a build under way")
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{statusBuilding}, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if r := moto.received(); len(r) != 0 {
		t.Errorf("moto received %v, want nothing", r)
	}
}
