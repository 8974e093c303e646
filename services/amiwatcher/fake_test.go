package main

import (
	"context"
	"fmt"
	"regexp"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/imagebuilder"
	ibtypes "github.com/aws/aws-sdk-go-v2/service/imagebuilder/types"
)

// fakeImageBuilder is a stateful Image Builder (moto has none) behind the interface the watcher
// uses, speaking the SDK's own types. It refuses what the API refuses: ARNs of the wrong shape
// (the API's documented patterns), a missing client token, an unknown pipeline or image.
type fakeImageBuilder struct {
	mu         sync.Mutex
	images     map[string]*ibtypes.Image // image build version ARN -> image
	pipelines  map[string]string         // pipeline ARN -> recipe name
	builds     map[string]int            // recipe name -> last build number
	tokens     map[string]string         // client token -> image ARN it started
	executions []string                  // image ARNs started, in order
	startErr   error                     // returned by StartImagePipelineExecution when set
	startHook  func(ctx context.Context) // runs first in StartImagePipelineExecution when set
}

var (
	imageARNPattern    = regexp.MustCompile(`^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws):image/[a-z0-9-_]+/[0-9]+\.[0-9]+\.[0-9]+/[0-9]+$`)
	pipelineARNPattern = regexp.MustCompile(`^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws):image-pipeline/[a-z0-9-_]+$`)
)

func newFakeImageBuilder() *fakeImageBuilder {
	return &fakeImageBuilder{images: map[string]*ibtypes.Image{}, pipelines: map[string]string{}, builds: map[string]int{}, tokens: map[string]string{}}
}

// addPipeline registers a pipeline building recipe spotrunner-<preset> version 1.0.1 and returns its ARN.
func (f *fakeImageBuilder) addPipeline(account, preset string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	arn := fmt.Sprintf("arn:aws:imagebuilder:us-east-1:%s:image-pipeline/spotrunner-%s", account, preset)
	f.pipelines[arn] = "spotrunner-" + preset
	return arn
}

// addImage records an image build of pipeline in status, with ami in us-east-1 when not empty,
// and returns its ARN; build numbers count up per recipe.
func (f *fakeImageBuilder) addImage(pipeline, status, ami string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addImageLocked(pipeline, status, ami)
}

func (f *fakeImageBuilder) addImageLocked(pipeline, status, ami string) string {
	recipe := f.pipelines[pipeline]
	if recipe == "" {
		recipe = "not-ours"
	}
	f.builds[recipe]++
	account := regexp.MustCompile(`:(\d{12}):`).FindStringSubmatch(pipeline)[1]
	arn := fmt.Sprintf("arn:aws:imagebuilder:us-east-1:%s:image/%s/1.0.1/%d", account, recipe, f.builds[recipe])
	img := &ibtypes.Image{
		Arn: aws.String(arn), Name: aws.String(recipe), Version: aws.String(fmt.Sprintf("1.0.1/%d", f.builds[recipe])),
		SourcePipelineArn: aws.String(pipeline), State: &ibtypes.ImageState{Status: ibtypes.ImageStatus(status)},
		OutputResources: &ibtypes.OutputResources{},
	}
	if ami != "" {
		img.OutputResources.Amis = []ibtypes.Ami{
			{Region: aws.String("eu-west-1"), Image: aws.String("ami-0other0region000")},
			{Region: aws.String("us-east-1"), Image: aws.String(ami)},
		}
	}
	f.images[arn] = img
	return arn
}

// finish sets an image's status and, for AVAILABLE, its AMI.
func (f *fakeImageBuilder) finish(arn, status, ami string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img := f.images[arn]
	img.State.Status = ibtypes.ImageStatus(status)
	if ami != "" {
		img.OutputResources.Amis = []ibtypes.Ami{{Region: aws.String("us-east-1"), Image: aws.String(ami)}}
	}
}

func (f *fakeImageBuilder) GetImage(_ context.Context, in *imagebuilder.GetImageInput, _ ...func(*imagebuilder.Options)) (*imagebuilder.GetImageOutput, error) {
	arn := aws.ToString(in.ImageBuildVersionArn)
	if !imageARNPattern.MatchString(arn) {
		return nil, &ibtypes.InvalidRequestException{Message: aws.String("imageBuildVersionArn " + arn + " does not match the required pattern")}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[arn]
	if !ok {
		return nil, &ibtypes.ResourceNotFoundException{Message: aws.String("image " + arn + " not found")}
	}
	cp := *img
	st := *img.State
	cp.State = &st
	return &imagebuilder.GetImageOutput{Image: &cp, RequestId: aws.String("req-1")}, nil
}

func (f *fakeImageBuilder) StartImagePipelineExecution(ctx context.Context, in *imagebuilder.StartImagePipelineExecutionInput, _ ...func(*imagebuilder.Options)) (*imagebuilder.StartImagePipelineExecutionOutput, error) {
	if f.startHook != nil {
		f.startHook(ctx)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	arn, token := aws.ToString(in.ImagePipelineArn), aws.ToString(in.ClientToken)
	if !pipelineARNPattern.MatchString(arn) {
		return nil, &ibtypes.InvalidRequestException{Message: aws.String("imagePipelineArn does not match the required pattern")}
	}
	if len(token) < 1 || len(token) > 36 {
		return nil, &ibtypes.InvalidRequestException{Message: aws.String("clientToken must be 1 to 36 characters")}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return nil, f.startErr
	}
	if _, ok := f.pipelines[arn]; !ok {
		return nil, &ibtypes.ResourceNotFoundException{Message: aws.String("pipeline " + arn + " not found")}
	}
	if img, ok := f.tokens[token]; ok {
		return &imagebuilder.StartImagePipelineExecutionOutput{ImageBuildVersionArn: aws.String(img), ClientToken: aws.String(token)}, nil
	}
	img := f.addImageLocked(arn, "PENDING", "")
	f.tokens[token] = img
	f.executions = append(f.executions, img)
	return &imagebuilder.StartImagePipelineExecutionOutput{ImageBuildVersionArn: aws.String(img), ClientToken: aws.String(token)}, nil
}

func (f *fakeImageBuilder) started() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.executions...)
}
