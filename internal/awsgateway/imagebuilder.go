package awsgateway

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/rs/zerolog"
)

// recipeVersion is the semantic version of every fake recipe; build numbers count up from 1.
const recipeVersion = "1.0.0"

// Image statuses, as Image Builder reports them (ImageState.status).
const (
	statusPending   = "PENDING"
	statusBuilding  = "BUILDING"
	statusAvailable = "AVAILABLE"
	statusFailed    = "FAILED"
)

// The ARN patterns of Image Builder's API reference (GetImage's imageBuildVersionArn,
// StartImagePipelineExecution's imagePipelineArn).
var (
	imageARNPattern    = regexp.MustCompile(`^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws):image/[a-z0-9-_]+/[0-9]+\.[0-9]+\.[0-9]+/[0-9]+$`)
	pipelineARNPattern = regexp.MustCompile(`^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws):image-pipeline/[a-z0-9-_]+$`)
)

// imageBuilder is a stateful Image Builder: pipelines (AddPipeline), executions started by
// StartImagePipelineExecution (idempotent on the client token), each a build that registers a
// real AMI in moto and reports its state changes.
type imageBuilder struct {
	g      *Gateway
	ctx    context.Context // ends with the gateway: builds under way stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	pipelines map[string]*pipeline // ARN ->
	images    map[string]*image    // image build version ARN ->
	tokens    map[string]started   // client token -> what it started
	stock     map[string]string    // architecture -> moto's AMI that builds copy
	onEvent   func([]byte)
}

type pipeline struct {
	arn, name, preset, arch string
	builds                  int
	failNext                []string // reasons, for the next builds
}

type image struct {
	arn, version string
	pipeline     *pipeline
	created      time.Time
	status       string
	reason       string
	ami          string
}

type started struct{ pipeline, image string }

func newImageBuilder(g *Gateway) *imageBuilder {
	ctx, cancel := context.WithCancel(context.Background())
	return &imageBuilder{
		g: g, ctx: ctx, cancel: cancel, onEvent: g.opts.OnImageEvent,
		pipelines: map[string]*pipeline{}, images: map[string]*image{}, tokens: map[string]started{}, stock: map[string]string{},
	}
}

func (b *imageBuilder) close() {
	b.cancel()
	b.wg.Wait()
}

// AddPipeline adds an Image Builder pipeline building the AMIs of preset, and returns its ARN:
// arn:aws:imagebuilder:<region>:<account>:image-pipeline/<lower-cased name>. Its recipe has the
// same name (as sam/image.yaml names both <stack>-<preset>), version 1.0.0; its builds make AMIs
// of architecture ("x86_64" or "arm64"). Adding a pipeline again returns the same ARN and
// changes nothing. It panics on a name Image Builder would refuse in an ARN or an architecture
// other than those two: a mistake in the test's setup.
func (g *Gateway) AddPipeline(preset, name, architecture string) string {
	b := g.images
	lower := strings.ToLower(name)
	arn := fmt.Sprintf("arn:aws:imagebuilder:%s:%s:image-pipeline/%s", g.opts.Region, g.opts.AccountID, lower)
	if !pipelineARNPattern.MatchString(arn) {
		panic(fmt.Sprintf("awsgateway: AddPipeline: name %q makes the ARN %s, which Image Builder refuses", name, arn))
	}
	if architecture != "x86_64" && architecture != "arm64" {
		panic(fmt.Sprintf("awsgateway: AddPipeline: architecture %q, want x86_64 or arm64", architecture))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.pipelines[arn]; !ok {
		b.pipelines[arn] = &pipeline{arn: arn, name: name, preset: preset, arch: architecture}
	}
	return arn
}

// FailNextBuild makes the next build started of the pipeline (its ARN) end FAILED with reason
// instead of AVAILABLE, e.g. "Image Builder failed to run tests: test component ... exited with
// code 1". Calls queue up, one per build. It panics on an unknown pipeline.
func (g *Gateway) FailNextBuild(pipelineARN, reason string) {
	b := g.images
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.pipelines[pipelineARN]
	if !ok {
		panic(fmt.Sprintf("awsgateway: FailNextBuild: no pipeline %s (AddPipeline first)", pipelineARN))
	}
	p.failNext = append(p.failNext, reason)
}

// SetImageEventHandler replaces Options.OnImageEvent: events from then on go to fn (nil drops
// them). For wiring that needs the gateway's URL first, such as the AMI watcher under RIE.
func (g *Gateway) SetImageEventHandler(fn func(event []byte)) {
	g.images.mu.Lock()
	defer g.images.mu.Unlock()
	g.images.onEvent = fn
}

// serve answers one Image Builder request (restJson1).
func (b *imageBuilder) serve(w http.ResponseWriter, req *request, log zerolog.Logger) {
	if err := b.g.checkRegion(req); err != nil {
		writeError(w, req, http.StatusBadRequest, "InvalidRequestException", err.Error())
		return
	}
	switch op, method := req.call.Operation, req.http.Method; {
	case op == "GetImage" && method == http.MethodGet:
		b.getImage(w, req)
	case op == "StartImagePipelineExecution" && method == http.MethodPut:
		b.start(w, req, log)
	default:
		writeError(w, req, http.StatusBadRequest, "InvalidRequestException",
			fmt.Sprintf("awsgateway: Image Builder %s %s is not emulated (GetImage and StartImagePipelineExecution are)", method, req.http.URL.Path))
	}
}

func (b *imageBuilder) getImage(w http.ResponseWriter, req *request) {
	arn := req.http.URL.Query().Get("imageBuildVersionArn")
	if !imageARNPattern.MatchString(arn) {
		writeError(w, req, http.StatusBadRequest, "InvalidRequestException", fmt.Sprintf("imageBuildVersionArn %q does not match the required pattern", arn))
		return
	}
	b.mu.Lock()
	img, ok := b.images[arn]
	var doc imageJSON
	if ok {
		doc = b.imageDoc(img)
	}
	b.mu.Unlock()
	if !ok {
		writeError(w, req, http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("The resource %s could not be found.", arn))
		return
	}
	writeJSON(w, http.StatusOK, "application/json", struct {
		RequestID string    `json:"requestId"`
		Image     imageJSON `json:"image"`
	}{requestID(), doc})
}

// start answers StartImagePipelineExecution: a new build of the pipeline, or the one an earlier
// call with the same client token started.
func (b *imageBuilder) start(w http.ResponseWriter, req *request, log zerolog.Logger) {
	body, err := req.readBody()
	var in struct {
		ClientToken      string            `json:"clientToken"`
		ImagePipelineArn string            `json:"imagePipelineArn"`
		Tags             map[string]string `json:"tags"`
	}
	if err != nil || json.Unmarshal(body, &in) != nil {
		writeError(w, req, http.StatusBadRequest, "InvalidRequestException", "awsgateway: the request body is not a StartImagePipelineExecution document")
		return
	}
	switch {
	case !pipelineARNPattern.MatchString(in.ImagePipelineArn):
		writeError(w, req, http.StatusBadRequest, "InvalidRequestException", fmt.Sprintf("imagePipelineArn %q does not match the required pattern", in.ImagePipelineArn))
		return
	case len(in.ClientToken) < 1 || len(in.ClientToken) > 36:
		writeError(w, req, http.StatusBadRequest, "InvalidRequestException", "clientToken must be 1 to 36 characters long")
		return
	}
	b.mu.Lock()
	if s, ok := b.tokens[in.ClientToken]; ok {
		b.mu.Unlock()
		if s.pipeline != in.ImagePipelineArn {
			writeError(w, req, http.StatusBadRequest, "IdempotentParameterMismatchException",
				fmt.Sprintf("The client token %s was used before with a different request.", in.ClientToken))
			return
		}
		writeStarted(w, in.ClientToken, s.image)
		return
	}
	p, ok := b.pipelines[in.ImagePipelineArn]
	if !ok {
		b.mu.Unlock()
		writeError(w, req, http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("The resource %s could not be found.", in.ImagePipelineArn))
		return
	}
	p.builds++
	version := fmt.Sprintf("%s/%d", recipeVersion, p.builds)
	img := &image{
		arn:     fmt.Sprintf("arn:aws:imagebuilder:%s:%s:image/%s/%s", b.g.opts.Region, b.g.opts.AccountID, strings.ToLower(p.name), version),
		version: version, pipeline: p, created: time.Now().UTC(), status: statusPending,
	}
	var fail string
	if len(p.failNext) > 0 {
		fail, p.failNext = p.failNext[0], p.failNext[1:]
	}
	b.images[img.arn] = img
	b.tokens[in.ClientToken] = started{pipeline: p.arn, image: img.arn}
	b.wg.Add(1)
	b.mu.Unlock()

	log.Info().Str("image", img.arn).Bool("willFail", fail != "").Msg("awsgateway: image build started")
	go b.build(img, fail, log)
	writeStarted(w, in.ClientToken, img.arn)
}

func writeStarted(w http.ResponseWriter, token, imageARN string) {
	writeJSON(w, http.StatusOK, "application/json", map[string]string{
		"requestId": requestID(), "clientToken": token, "imageBuildVersionArn": imageARN,
	})
}

// build runs one execution: BUILDING at once, then after BuildTime FAILED (FailNextBuild) or the
// AMI registered in moto and AVAILABLE. It stops when the gateway closes.
func (b *imageBuilder) build(img *image, fail string, log zerolog.Logger) {
	defer b.wg.Done()
	b.transition(img, statusBuilding, "", "")
	t := time.NewTimer(b.g.opts.BuildTime)
	defer t.Stop()
	select {
	case <-t.C:
	case <-b.ctx.Done():
		return
	}
	if fail != "" {
		b.transition(img, statusFailed, fail, "")
		return
	}
	ami, err := b.registerAMI(img)
	if err != nil {
		if b.ctx.Err() != nil {
			return
		}
		log.Error().Err(err).Str("image", img.arn).Msg("awsgateway: image build could not register its AMI")
		b.transition(img, statusFailed, "awsgateway: register the AMI in moto: "+err.Error(), "")
		return
	}
	log.Info().Str("image", img.arn).Str("amiId", ami).Msg("awsgateway: image available")
	b.transition(img, statusAvailable, "", ami)
}

// transition moves img to status and reports the state change.
func (b *imageBuilder) transition(img *image, status, reason, ami string) {
	b.mu.Lock()
	previous := img.status
	img.status, img.reason = status, reason
	if ami != "" {
		img.ami = ami
	}
	onEvent := b.onEvent
	b.mu.Unlock()
	if onEvent != nil {
		onEvent(b.event(img.arn, previous, status, reason))
	}
}

// event is Image Builder's EventBridge event for one image state change, in the shape of
// services/amiwatcher/testdata/image-*.json.
func (b *imageBuilder) event(imageARN, previous, status, reason string) []byte {
	type state struct {
		Status string `json:"status"`
		Reason string `json:"reason,omitempty"`
	}
	ev := struct {
		Version    string   `json:"version"`
		ID         string   `json:"id"`
		DetailType string   `json:"detail-type"`
		Source     string   `json:"source"`
		Account    string   `json:"account"`
		Time       string   `json:"time"`
		Region     string   `json:"region"`
		Resources  []string `json:"resources"`
		Detail     struct {
			PreviousState state `json:"previous-state"`
			State         state `json:"state"`
		} `json:"detail"`
	}{
		Version: "0", ID: requestID(), DetailType: "EC2 Image Builder Image State Change", Source: "aws.imagebuilder",
		Account: b.g.opts.AccountID, Time: time.Now().UTC().Format(time.RFC3339), Region: b.g.opts.Region, Resources: []string{imageARN},
	}
	ev.Detail.PreviousState = state{Status: previous}
	ev.Detail.State = state{Status: status, Reason: reason}
	out, _ := json.Marshal(ev) // strings only: cannot fail
	return out
}

// registerAMI copies moto's stock AMI of the pipeline's architecture into a new AMI named and
// tagged as the stack's distribution configuration names and tags them (sam/image.yaml), plus
// the Ec2ImageBuilderArn tag Image Builder puts on the AMIs it makes.
func (b *imageBuilder) registerAMI(img *image) (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	p := img.pipeline
	source, err := b.stockImage(ctx, p.arch)
	if err != nil {
		return "", err
	}
	client := b.g.motoEC2
	name := fmt.Sprintf("%s-%s-%s", p.name, strings.ReplaceAll(img.version, "/", "-"), img.created.Format("2006-01-02T15-04-05Z"))
	out, err := client.CopyImage(ctx, &ec2.CopyImageInput{
		SourceImageId: aws.String(source), SourceRegion: aws.String(b.g.opts.Region), Name: aws.String(name),
		Description: aws.String(fmt.Sprintf("Spot Runner image for preset %s (%s)", p.preset, p.arch)),
	})
	if err != nil {
		return "", fmt.Errorf("copy image %s: %w", source, err)
	}
	id := aws.ToString(out.ImageId)
	_, err = client.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{
		{Key: aws.String("spotrunner:managed"), Value: aws.String("true")},
		{Key: aws.String("spotrunner:preset"), Value: aws.String(p.preset)},
		{Key: aws.String("Ec2ImageBuilderArn"), Value: aws.String(img.arn)},
	}})
	if err != nil {
		return "", fmt.Errorf("tag image %s: %w", id, err)
	}
	return id, nil
}

// stockImage is the newest Ubuntu AMI moto knows for arch, or its newest of any name (the choice
// of internal/ec2world's Setup, copied here because that one is a test helper).
func (b *imageBuilder) stockImage(ctx context.Context, arch string) (string, error) {
	b.mu.Lock()
	id, ok := b.stock[arch]
	b.mu.Unlock()
	if ok {
		return id, nil
	}
	for _, filters := range [][]ec2types.Filter{
		{{Name: aws.String("architecture"), Values: []string{arch}}, {Name: aws.String("name"), Values: []string{"ubuntu*"}}},
		{{Name: aws.String("architecture"), Values: []string{arch}}},
	} {
		out, err := b.g.motoEC2.DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: filters})
		if err != nil {
			return "", fmt.Errorf("describe %s images: %w", arch, err)
		}
		if len(out.Images) == 0 {
			continue
		}
		newest := slices.MaxFunc(out.Images, func(x, y ec2types.Image) int {
			return cmp.Or(cmp.Compare(aws.ToString(x.CreationDate), aws.ToString(y.CreationDate)), cmp.Compare(aws.ToString(x.ImageId), aws.ToString(y.ImageId)))
		})
		id = aws.ToString(newest.ImageId)
		b.mu.Lock()
		b.stock[arch] = id
		b.mu.Unlock()
		return id, nil
	}
	return "", fmt.Errorf("moto knows no %s AMI", arch)
}

// imageJSON is GetImage's image, in Image Builder's wire names.
type imageJSON struct {
	Arn                string            `json:"arn"`
	Name               string            `json:"name"`
	Version            string            `json:"version"`
	Type               string            `json:"type"`
	Platform           string            `json:"platform"`
	OSVersion          string            `json:"osVersion"`
	BuildType          string            `json:"buildType"`
	DateCreated        string            `json:"dateCreated"`
	State              stateJSON         `json:"state"`
	SourcePipelineArn  string            `json:"sourcePipelineArn"`
	SourcePipelineName string            `json:"sourcePipelineName"`
	OutputResources    *outputsJSON      `json:"outputResources,omitempty"`
	Tags               map[string]string `json:"tags"`
}

type stateJSON struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

type outputsJSON struct {
	Amis []amiJSON `json:"amis"`
}

type amiJSON struct {
	Region      string    `json:"region"`
	Image       string    `json:"image"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	AccountID   string    `json:"accountId"`
	State       stateJSON `json:"state"`
}

// imageDoc is img as GetImage answers it; b.mu is held.
func (b *imageBuilder) imageDoc(img *image) imageJSON {
	p := img.pipeline
	doc := imageJSON{
		Arn: img.arn, Name: p.name, Version: img.version, Type: "AMI", Platform: "Linux", OSVersion: "Ubuntu 22",
		BuildType: "USER_INITIATED", DateCreated: img.created.Format("2006-01-02T15:04:05.000Z"),
		State:             stateJSON{Status: img.status, Reason: img.reason},
		SourcePipelineArn: p.arn, SourcePipelineName: p.name,
		Tags: map[string]string{"spotrunner:managed": "true", "spotrunner:preset": p.preset},
	}
	if img.ami != "" {
		doc.OutputResources = &outputsJSON{Amis: []amiJSON{{
			Region: b.g.opts.Region, Image: img.ami, Name: p.name, AccountID: b.g.opts.AccountID,
			Description: fmt.Sprintf("Spot Runner image for preset %s (%s)", p.preset, p.arch), State: stateJSON{Status: statusAvailable},
		}}}
	}
	return doc
}
