package awsgateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/imagebuilder"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// seen is one request the fake moto received.
type seen struct {
	Method, Path, Host, Target, Body string
}

// fakeMoto is a recording stand-in for moto_server on loopback: it answers every request with
// an empty success in the request's protocol.
type fakeMoto struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newFakeMoto(t *testing.T) *fakeMoto {
	f := &fakeMoto{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, seen{r.Method, r.URL.Path, r.Host, r.Header.Get("X-Amz-Target"), string(body)})
		f.mu.Unlock()
		switch {
		case r.Header.Get("X-Amz-Target") != "":
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			fmt.Fprint(w, "{}")
		case isForm(r):
			form, _ := url.ParseQuery(string(body))
			action := form.Get("Action")
			w.Header().Set("Content-Type", "text/xml")
			fmt.Fprintf(w, `<%sResponse><requestId>r</requestId><%sResult><Account>123456789012</Account></%sResult></%sResponse>`, action, action, action, action)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeMoto) received() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

func startFake(t *testing.T) (*Gateway, *fakeMoto, aws.Config) {
	t.Helper()
	moto := newFakeMoto(t)
	g, err := Start(context.Background(), Options{MotoURL: moto.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g, moto, testConfig(g.URL())
}

// startWorld starts a gateway in front of the local world's moto, or ends the test as
// world.Endpoint does when the world is not running, and returns it with an SDK config pointed
// at it: dummy static credentials and the SDK's standard retries, as the binaries have them
// (moto drops idle keep-alive connections now and then; the retry covers it).
func startWorld(t *testing.T, o Options) (*Gateway, aws.Config) {
	t.Helper()
	o.MotoURL = world.Endpoint(t)
	g, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	cfg := testConfig(g.URL())
	cfg.Retryer = nil
	return g, cfg
}

// TestIdentifyAndForward: fixtures are a fake moto on loopback and the real SDK clients of every
// service the project uses. Each call must be recorded with its service and operation and reach
// the fake unchanged (body, target, path), with the Host it was sent to, so that URLs moto builds
// lead back to the gateway.
func TestIdentifyAndForward(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, moto, cfg := startFake(t)
	host := strings.TrimPrefix(g.URL(), "http://")
	queue := g.URL() + "/123456789012/jobs.fifo"

	_, _ = sqs.NewFromConfig(cfg).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queue), MessageBody: aws.String(`{"version":1}`)})
	_, _ = dynamodb.NewFromConfig(cfg).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("state"), Key: map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: "job#1"}}})
	_, _ = secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("key")})
	_, _ = ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/p")})
	_, _ = ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-1"}})
	_, _ = sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	resp, err := http.Get(g.URL() + "/moto-api/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()

	wantCalls := []Call{
		{"sqs", "SendMessage"}, {"dynamodb", "GetItem"}, {"secretsmanager", "GetSecretValue"}, {"ssm", "GetParameter"},
		{"ec2", "DescribeInstances"}, {"sts", "GetCallerIdentity"}, {"", ""},
	}
	if diff := cmp.Diff(wantCalls, g.Calls()); diff != "" {
		t.Errorf("Calls() (-want +got):\n%s", diff)
	}
	want := []seen{
		{"POST", "/", host, "AmazonSQS.SendMessage", `{"MessageBody":"{\"version\":1}","QueueUrl":"` + queue + `"}`},
		{"POST", "/", host, "DynamoDB_20120810.GetItem", `{"Key":{"pk":{"S":"job#1"}},"TableName":"state"}`},
		{"POST", "/", host, "secretsmanager.GetSecretValue", `{"SecretId":"key"}`},
		{"POST", "/", host, "AmazonSSM.GetParameter", `{"Name":"/p"}`},
		{"POST", "/", host, "", "Action=DescribeInstances&InstanceId.1=i-1&Version=2016-11-15"},
		{"POST", "/", host, "", "Action=GetCallerIdentity&Version=2011-06-15"},
		{"GET", "/moto-api/", host, "", ""},
	}
	if diff := cmp.Diff(want, moto.received()); diff != "" {
		t.Errorf("requests moto received (-want +got):\n%s", diff)
	}
}

// TestFailCall: fixtures are a fake moto and one injected fault per protocol (awsJson 1.0 and
// 1.1, EC2's query, awsQuery, restJson1). The real SDK client of each service must decode the
// fault as that service's error (code, message, status, request id) without a retry, the fake
// must never see the request, and the next call must go through.
func TestFailCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name          string
		service, op   string
		status        int
		code, message string
		call          func(aws.Config) error
	}{
		{name: "SQS throttling (awsJson 1.0)", service: "sqs", op: "SendMessage", status: 400, code: "ThrottlingException", message: "Rate exceeded",
			call: func(cfg aws.Config) error {
				_, err := sqs.NewFromConfig(cfg).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String("http://q/1/q"), MessageBody: aws.String("m")})
				return err
			}},
		{name: "DynamoDB throttling (awsJson 1.0)", service: "dynamodb", op: "UpdateItem", status: 400, code: "ThrottlingException", message: "Throughput exceeds the current capacity for one or more global secondary indexes.",
			call: func(cfg aws.Config) error {
				_, err := dynamodb.NewFromConfig(cfg).UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String("t"), Key: map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: "k"}}})
				return err
			}},
		{name: "SSM throttling (awsJson 1.1)", service: "ssm", op: "GetParameter", status: 400, code: "ThrottlingException", message: "Rate exceeded",
			call: func(cfg aws.Config) error {
				_, err := ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/p")})
				return err
			}},
		{name: "EC2 throttling (ec2Query)", service: "ec2", op: "TerminateInstances", status: 503, code: "RequestLimitExceeded", message: "Request limit exceeded.",
			call: func(cfg aws.Config) error {
				_, err := ec2.NewFromConfig(cfg).TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{"i-1"}})
				return err
			}},
		{name: "STS throttling (awsQuery)", service: "sts", op: "GetCallerIdentity", status: 400, code: "Throttling", message: "Rate exceeded",
			call: func(cfg aws.Config) error {
				_, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
				return err
			}},
		{name: "Image Builder outage (restJson1)", service: "imagebuilder", op: "GetImage", status: 503, code: "ServiceUnavailableException", message: "Service unavailable",
			call: func(cfg aws.Config) error {
				_, err := imagebuilder.NewFromConfig(cfg).GetImage(ctx, &imagebuilder.GetImageInput{ImageBuildVersionArn: aws.String("arn:aws:imagebuilder:us-east-1:123456789012:image/x/1.0.0/1")})
				return err
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, moto, cfg := startFake(t)
			g.FailCall(tt.service, tt.op, 1, tt.status, tt.code, tt.message)
			checkAPIError(t, tt.call(cfg), tt.status, tt.code, tt.message)
			if got := moto.received(); len(got) != 0 {
				t.Errorf("moto received %v, want nothing: the fault answers first", got)
			}
			err := tt.call(cfg)
			if tt.service == "imagebuilder" {
				checkAPIError(t, err, 404, "ResourceNotFoundException", "") // the fake's answer
			} else if err != nil {
				t.Errorf("second call: %v, want it through (one fault injected)", err)
			}
			if diff := cmp.Diff([]Call{{tt.service, tt.op}, {tt.service, tt.op}}, g.Calls()); diff != "" {
				t.Errorf("Calls() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFailCallRetried: fixtures are a fake moto and two injected SQS throttling faults. The SDK's
// standard retryer must treat the fault as throttling and retry: with three attempts the call
// succeeds on the third, and moto sees it once.
func TestFailCallRetried(t *testing.T) {
	t.Parallel()
	g, moto, cfg := startFake(t)
	g.FailCall("sqs", "SendMessage", 2, 400, "ThrottlingException", "Rate exceeded")
	client := sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 3
			// The SDK's backoff, not under test, would make this test take seconds.
			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
		})
	})
	if _, err := client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String("http://q/1/q"), MessageBody: aws.String("m")}); err != nil {
		t.Fatalf("SendMessage with retries: %v", err)
	}
	if n := len(moto.received()); n != 1 {
		t.Errorf("moto received %d requests, want 1", n)
	}
	if n := len(g.Calls()); n != 3 {
		t.Errorf("gateway received %d requests, want 3 (two throttled)", n)
	}
}

// TestCallHook: fixtures are a fake moto and a hook that sees every call and drops the first
// PutParameter. The hook must see each call with its service and operation before moto does; the
// dropped call must fail on the client with no answer (the connection cut, no retry configured)
// and never reach moto; the calls the hook lets through must.
func TestCallHook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g, moto, cfg := startFake(t)
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	var mu sync.Mutex
	var hooked []Call
	g.SetCallHook(func(c Call) bool {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, c)
		return c.Operation == "PutParameter" && len(hooked) == 1
	})
	client := ssm.NewFromConfig(cfg)
	put := func() error {
		_, err := client.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/p"), Value: aws.String("v")})
		return err
	}
	err := put()
	var apiErr smithy.APIError
	if err == nil || errors.As(err, &apiErr) {
		t.Fatalf("dropped PutParameter: %v, want a transport error (no answer)", err)
	}
	if got := moto.received(); len(got) != 0 {
		t.Fatalf("moto received %v, want nothing: the call was dropped", got)
	}
	if err := put(); err != nil {
		t.Fatalf("second PutParameter: %v", err)
	}
	g.SetCallHook(nil)
	if _, err := client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/p")}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]Call{{"ssm", "PutParameter"}, {"ssm", "PutParameter"}}, hooked); diff != "" {
		t.Errorf("calls the hook saw (-want +got):\n%s", diff)
	}
	if n := len(moto.received()); n != 2 {
		t.Errorf("moto received %d requests, want 2 (the second PutParameter, the GetParameter)", n)
	}
}

// TestRefusals: fixtures are a fake moto and requests the gateway must answer itself: a
// CreateFleet with a parameter it cannot decode, an Image Builder operation it does not emulate,
// a CreateFleet signed for another region. Each must be a 400 naming the reason, and moto must
// see none of them. A moto URL off loopback must be refused at Start.
func TestRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, moto, cfg := startFake(t)

	_, err := ec2.NewFromConfig(cfg).CreateFleet(ctx, minimalInput(func(in *ec2.CreateFleetInput) { in.DryRun = aws.Bool(true) }))
	checkAPIError(t, err, 400, "UnknownParameter", "awsgateway: CreateFleet parameter(s) DryRun not emulated: the local world decodes only what libs/fleet sends")

	_, err = imagebuilder.NewFromConfig(cfg).ListImages(ctx, &imagebuilder.ListImagesInput{})
	checkAPIError(t, err, 400, "InvalidRequestException", "awsgateway: Image Builder POST /ListImages is not emulated (GetImage and StartImagePipelineExecution are)")

	other := cfg.Copy()
	other.Region = "eu-west-1"
	_, err = ec2.NewFromConfig(other).CreateFleet(ctx, minimalInput(nil))
	checkAPIError(t, err, 400, "UnsupportedOperation", "awsgateway: ec2 CreateFleet signed for eu-west-1; the gateway emulates it in us-east-1 only: region not served")

	if got := moto.received(); len(got) != 0 {
		t.Errorf("moto received %v, want nothing", got)
	}
	for _, u := range []string{"http://example.com:5000", "http://10.0.0.1:5000", "ftp://127.0.0.1", ""} {
		if g, err := Start(ctx, Options{MotoURL: u}); err == nil {
			_ = g.Close()
			t.Errorf("Start with moto at %q succeeded, want a refusal", u)
		}
	}
}
