// Package awsgateway is the local world's one AWS endpoint: an HTTP server on loopback in front of
// moto_server that gives the real binaries (under aws-lambda-rie, with AWS_ENDPOINT_URL pointing
// here) and the AWS CLI of the instance bootstrap the same strict AWS that the unit tests get from
// the Go-level wrappers of internal/ec2world and internal/world. For each request, in order:
//
//  1. identify the service (SigV4 credential scope, else X-Amz-Target) and the operation
//     (X-Amz-Target for the JSON protocols, Action= for the query protocols, the path for Image
//     Builder's REST-JSON) and record both (Calls);
//  2. answer an injected fault (FailCall) in that protocol's error format, without asking moto;
//  3. answer what moto gets wrong or lacks:
//     - EC2 CreateFleet: the query form is decoded into an ec2.CreateFleetInput (only what
//     libs/fleet sends; anything else is refused with a 400 naming it), run through an
//     ec2world.EC2 over moto (ClientToken idempotency, InstanceRequirements selection, refusal of
//     deregistered AMIs, injected fleet errors: FailFleet) and encoded as EC2's XML answer;
//     - SSM PutParameter: values longer than their tier holds are refused as AWS refuses them;
//     - DynamoDB writes reach moto one at a time (moto applies conditions without a lock), and
//     transaction conflicts can be injected (InjectConflicts);
//     - Image Builder (moto has none): GetImage and StartImagePipelineExecution of pipelines
//     added with AddPipeline; a build registers a real AMI in moto and reports Image Builder's
//     state-change events (OnImageEvent);
//  4. pass everything else to moto unchanged (body streamed, headers and Host kept, so that the
//     URLs moto builds, SQS queue URLs among them, point back here).
//
// SigV4 signatures are not checked (moto does not check them either). The gateway listens on
// 127.0.0.1 only and refuses a moto URL that is not on loopback. The package is for the local
// world only (tests and make demo), never for a deployment.
package awsgateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/rs/zerolog"

	"github.com/spotrunner/spotrunner/internal/ec2world"
)

// Options configure Start.
type Options struct {
	// MotoURL is required: moto_server's base URL, on loopback (e.g. http://127.0.0.1:5000).
	MotoURL string
	// Region is optional, default us-east-1: the region the emulated operations (CreateFleet,
	// Image Builder) serve; a CreateFleet signed for another region is refused.
	Region string
	// AccountID is optional, default 123456789012 (moto's default account): used in ARNs.
	AccountID string
	// Log is optional; the zero Logger logs nothing. One line per emulated answer or injected
	// fault, and per request at debug level.
	Log zerolog.Logger
	// SSMDefaultTier is optional, default Standard: the account's default parameter tier, used
	// when a PutParameter names none (see internal/world.SSM).
	SSMDefaultTier string
	// BuildTime is optional, default 0: how long an Image Builder build takes between its
	// BUILDING event and its result.
	BuildTime time.Duration
	// OnImageEvent is optional: called with each Image Builder state-change event (an EventBridge
	// event as JSON), in order per build, from the build's goroutine. Events are dropped while it
	// is nil; SetImageEventHandler replaces it after Start.
	OnImageEvent func(event []byte)
}

// Call is one request the gateway received, e.g. {"sqs", "SendMessage"}. Service is the SigV4
// signing name; Operation is "" when the request named none the gateway could read.
type Call struct {
	Service   string
	Operation string
}

// Gateway is the running server. Safe for concurrent use.
type Gateway struct {
	opts     Options
	moto     *url.URL
	listener net.Listener
	server   *http.Server
	proxy    *httputil.ReverseProxy
	ec2      *ec2world.EC2
	// motoEC2 talks to moto directly: the gateway's own EC2 calls (AMIs of image builds).
	motoEC2 *ec2.Client
	images  *imageBuilder
	dynamo  dynamo
	// callHook is SetCallHook's function.
	callHook atomic.Pointer[func(Call) bool]

	mu     sync.Mutex
	calls  []Call
	faults []fault
}

// Start listens on a free loopback port and serves until Close. ctx bounds the start only.
func Start(ctx context.Context, o Options) (*Gateway, error) {
	moto, err := loopbackURL(o.MotoURL)
	if err != nil {
		return nil, fmt.Errorf("awsgateway: moto URL: %w", err)
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccountID == "" {
		o.AccountID = "123456789012"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("awsgateway: listen on loopback: %w", err)
	}
	g := &Gateway{opts: o, moto: moto, listener: ln}
	// The inner client does not retry: the caller's SDK retries, as it would against AWS.
	g.motoEC2 = ec2.New(ec2.Options{
		Region:       o.Region,
		BaseEndpoint: aws.String(moto.String()),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		Retryer:      aws.NopRetryer{},
	})
	g.ec2 = ec2world.New(g.motoEC2)
	g.images = newImageBuilder(g)
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(moto)
			pr.Out.Host = pr.In.Host // moto builds URLs (SQS queue URLs) from it: they lead back here
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.opts.Log.Error().Err(err).Str("path", r.URL.Path).Msg("awsgateway: moto did not answer")
			http.Error(w, "awsgateway: moto did not answer", http.StatusBadGateway)
		},
	}
	g.server = &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = g.server.Serve(ln) }()
	return g, nil
}

// loopbackURL parses raw and refuses anything not on loopback: the local world sends no traffic
// anywhere else.
func loopbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q is not an http(s) URL", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%q is not on loopback", raw)
	}
	return u, nil
}

// URL is the gateway's base URL, e.g. http://127.0.0.1:43121: the AWS_ENDPOINT_URL of the
// binaries.
func (g *Gateway) URL() string { return "http://" + g.listener.Addr().String() }

// Close stops the server and the builds under way, and waits for them.
func (g *Gateway) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := g.server.Shutdown(ctx)
	g.images.close()
	if err != nil {
		return fmt.Errorf("awsgateway: close: %w", err)
	}
	return nil
}

// Calls returns every request received, in order, faulted ones included. The gateway's own calls
// to moto are not listed.
func (g *Gateway) Calls() []Call {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Call(nil), g.calls...)
}

// FailFleet makes the next n CreateFleet calls of capacityType ("spot", "on-demand", "" for any)
// answer HTTP 200 with zero instances and code in their Errors, e.g. FailFleet(1, "spot",
// "InsufficientInstanceCapacity", "There is no Spot capacity available that matches your
// request."). See ec2world.EC2.FailFleet.
func (g *Gateway) FailFleet(n int, capacityType, code, message string) {
	g.ec2.FailFleet(n, capacityType, code, message)
}

// SetCallHook makes fn see every call before the gateway handles it (nil: none), in the handling
// goroutine: a test can act at an exact point of a client's work, e.g. crash a function when it
// writes a parameter. When fn returns true the call is dropped: the connection is cut with no
// answer and nothing reaches AWS (a client that died before its request landed); otherwise the
// call goes on as usual.
func (g *Gateway) SetCallHook(fn func(Call) (drop bool)) {
	if fn == nil {
		g.callHook.Store(nil)
		return
	}
	g.callHook.Store(&fn)
}

// maxBuffered bounds the bodies the gateway reads itself (query forms, the JSON it checks).
const maxBuffered = 16 << 20

// ServeHTTP handles one request as the package comment lists.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := identify(r)
	if err != nil {
		writeError(w, req, http.StatusBadRequest, "InvalidRequest", "awsgateway: "+err.Error())
		return
	}
	g.record(req.call)
	if hook := g.callHook.Load(); hook != nil && (*hook)(req.call) {
		panic(http.ErrAbortHandler) // net/http closes the connection and logs nothing
	}
	log := g.opts.Log.With().Str("service", req.call.Service).Str("operation", req.call.Operation).Logger()
	if f, ok := g.takeFault(req.call); ok {
		log.Info().Int("status", f.status).Str("code", f.code).Msg("awsgateway: injected fault")
		writeError(w, req, f.status, f.code, f.message)
		return
	}
	switch req.call.Service {
	case "ec2":
		if req.call.Operation == "CreateFleet" {
			g.createFleet(w, req, log)
			return
		}
	case "ssm":
		if req.call.Operation == "PutParameter" {
			g.putParameter(w, req, log)
			return
		}
	case "dynamodb":
		if g.dynamoWrite(w, req, log) {
			return
		}
	case "imagebuilder":
		g.images.serve(w, req, log)
		return
	}
	log.Debug().Msg("awsgateway: to moto")
	g.forward(w, req)
}

// forward passes the request to moto, with the body the gateway read (if it read it).
func (g *Gateway) forward(w http.ResponseWriter, req *request) {
	g.proxy.ServeHTTP(w, req.http)
}

func (g *Gateway) record(c Call) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, c)
}

// requestID is an opaque unique id in AWS's UUID shape.
func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// errRegion is returned for an emulated operation signed for a region the gateway does not serve.
var errRegion = errors.New("region not served")

// checkRegion refuses a request signed for another region than the gateway's.
func (g *Gateway) checkRegion(req *request) error {
	if req.region != "" && !strings.EqualFold(req.region, g.opts.Region) {
		return fmt.Errorf("awsgateway: %s %s signed for %s; the gateway emulates it in %s only: %w",
			req.call.Service, req.call.Operation, req.region, g.opts.Region, errRegion)
	}
	return nil
}
