package lambdasim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// FunctionOptions configure a Function.
type FunctionOptions struct {
	// Name is required: the function's name (AWS_LAMBDA_FUNCTION_NAME, its ARN's last part).
	Name string
	// Bootstrap is required: the function's executable (Build's output).
	Bootstrap string
	// RIE is required: aws-lambda-rie (LookRIE).
	RIE string
	// Endpoint is required: the AWS endpoint the function talks to (AWS_ENDPOINT_URL), on
	// loopback. The function gets dummy credentials; nothing is sent anywhere else.
	Endpoint string
	// Env is the function's own environment (Template.Environment); optional. Like Lambda,
	// StartFunction refuses one that sets a variable Lambda reserves.
	Env map[string]string
	// Region is optional, default us-east-1 (AWS_REGION, AWS_DEFAULT_REGION).
	Region string
	// Timeout is optional, default 3 s (Lambda's): the invocation's deadline, which the emulator
	// enforces. Rounded up to whole seconds, as Lambda counts it.
	Timeout time.Duration
	// MemoryMB is optional, default 128 (AWS_LAMBDA_FUNCTION_MEMORY_SIZE).
	MemoryMB int
	// Instances is optional, default 1: how many emulators (Lambda's execution environments) run
	// the function, and so how many invocations run at once. More wait for a free one.
	Instances int
	// Log receives the emulators' and the function's output (stdout and stderr: the services' JSON
	// log lines, the emulator's START/END/REPORT lines and warnings), a whole line per Write;
	// optional, default discard. Writes are serialised.
	Log io.Writer
}

// Lambda's reserved environment variables: a function's configuration may not set them
// (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime).
var reservedEnv = []string{
	"_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
	"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
	"AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
	"AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
}

// Function is one Lambda function running locally: a pool of aws-lambda-rie processes, each
// running the function's bootstrap as Lambda runs it in an execution environment.
//
// An emulator serves one invocation at a time (a second request while one is in flight makes it
// answer AlreadyReserved and then crash on a nil pointer), so each is lent to one Invoke at a
// time, and several run for concurrency, as Lambda runs several environments. The warmest free
// one is used first, as Lambda reuses warm environments before starting new ones. An emulator
// that crashed, or that answered in a way that leaves it in doubt, is replaced before its next
// invocation.
type Function struct {
	o      FunctionOptions
	env    []string
	log    *lockedWriter
	client *http.Client

	sem    chan struct{} // a token per instance lent out
	mu     sync.Mutex
	idle   []*instance // free instances; the most recently used last
	all    []*instance
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup // invocations in flight

	invocations, coldStarts, functionErrors, restarts atomic.Int64
}

// FunctionStats count what a Function did.
type FunctionStats struct {
	// Invocations is how many invocations reached an emulator.
	Invocations int64
	// ColdStarts is how many of them started the runtime first (an environment's first
	// invocation, or its first after the runtime exited or timed out).
	ColdStarts int64
	// FunctionErrors is how many ended in a function error.
	FunctionErrors int64
	// Restarts is how many emulators were replaced after a crash or an answer in doubt.
	Restarts int64
}

// ErrClosed is returned by Invoke on a closed Function.
var ErrClosed = errors.New("function closed")

// FunctionError is an invocation that ran and failed: the handler returned an error, panicked,
// the runtime exited, or the invocation timed out. Lambda answers these with
// X-Amz-Function-Error and the error document; the emulator drops that header, so an answer is a
// function error when it is an error document (the test SAM CLI also makes), a 502 from the
// emulator (the runtime exited), or its timeout message.
type FunctionError struct {
	// Type is the document's errorType, e.g. "errorString", "Runtime.ExitError",
	// "Sandbox.Timedout".
	Type string
	// Message is the document's errorMessage.
	Message string
	// Payload is the error document as the runtime returned it.
	Payload []byte
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("function error %s: %s", e.Type, e.Message)
}

// StartFunction starts o.Instances emulators for the function and returns once each accepts
// connections. The runtime itself starts on an emulator's first invocation (a cold start), as in
// Lambda.
func StartFunction(ctx context.Context, o FunctionOptions) (*Function, error) {
	env, err := o.environ()
	if err != nil {
		return nil, fmt.Errorf("start function %s: %w", o.Name, err)
	}
	if o.Instances <= 0 {
		o.Instances = 1
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	f := &Function{
		o:   o,
		env: env,
		log: &lockedWriter{w: o.Log},
		client: &http.Client{Transport: &http.Transport{
			Proxy:               nil, // loopback only, whatever the environment says
			MaxIdleConnsPerHost: 1,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		}},
		sem:    make(chan struct{}, o.Instances),
		closed: make(chan struct{}),
	}
	for i := range o.Instances {
		in := &instance{f: f, n: i}
		if err := in.start(ctx); err != nil {
			f.Close()
			return nil, fmt.Errorf("start function %s: %w", o.Name, err)
		}
		f.all = append(f.all, in)
		f.idle = append(f.idle, in)
	}
	return f, nil
}

// environ is the emulator's environment, which it passes on to the runtime: the function's own
// variables, then what Lambda sets, then what the local world adds.
func (o FunctionOptions) environ() ([]string, error) {
	switch {
	case o.Name == "":
		return nil, errors.New("no function name")
	case o.Bootstrap == "":
		return nil, errors.New("no bootstrap")
	case o.RIE == "":
		return nil, errors.New("no aws-lambda-rie")
	}
	if err := loopback(o.Endpoint); err != nil {
		return nil, err
	}
	for k := range o.Env {
		if slices.Contains(reservedEnv, k) {
			return nil, fmt.Errorf("environment variable %s is reserved by Lambda", k)
		}
		if k == "AWS_ENDPOINT_URL" {
			return nil, errors.New("environment sets AWS_ENDPOINT_URL; give it as Endpoint")
		}
	}
	region := cmpOr(o.Region, defaultRegion)
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = samDefaultTimeout
	}
	memory := o.MemoryMB
	if memory <= 0 {
		memory = samDefaultMemoryMB
	}
	env := map[string]string{}
	for k, v := range o.Env {
		env[k] = v
	}
	for k, v := range map[string]string{
		// As Lambda sets them for a provided.al2023 function.
		"_HANDLER":                        "bootstrap",
		"AWS_REGION":                      region,
		"AWS_DEFAULT_REGION":              region,
		"AWS_LAMBDA_FUNCTION_NAME":        o.Name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(memory),
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + o.Name,
		"AWS_LAMBDA_LOG_STREAM_NAME":      time.Now().UTC().Format("2006/01/02") + "/[$LATEST]local",
		"AWS_ACCESS_KEY_ID":               "testing",
		"AWS_SECRET_ACCESS_KEY":           "testing",
		"AWS_SESSION_TOKEN":               "testing",
		"LAMBDA_TASK_ROOT":                filepath.Dir(o.Bootstrap),
		"LANG":                            "en_US.UTF-8",
		"TZ":                              ":UTC",
		"PATH":                            "/usr/local/bin:/usr/bin:/bin",
		// The emulator's reading of the function's timeout, in seconds (rie/handlers.go; it
		// defaults to 300).
		"AWS_LAMBDA_FUNCTION_TIMEOUT": strconv.Itoa(int((timeout + time.Second - 1) / time.Second)),
		// The local world's: AWS is moto, and nothing asks the EC2 metadata service.
		"AWS_ENDPOINT_URL":          o.Endpoint,
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for _, k := range sortedKeys(env) {
		out = append(out, k+"="+env[k])
	}
	return out, nil
}

// loopback checks that endpoint is an http(s) URL on a loopback address.
func loopback(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("endpoint %q: want http://127.0.0.1:<port>", endpoint)
	}
	if h := u.Hostname(); h != "localhost" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("endpoint %q is not on loopback: the local world talks to nothing else", endpoint)
		}
	}
	return nil
}

// Name is the function's name.
func (f *Function) Name() string { return f.o.Name }

// Crash kills (SIGKILL) the runtime of every environment that is serving an invocation, as a
// Lambda execution environment dies mid-invocation (out of memory, a host failure): the
// invocation ends in an error and the environment starts cold next time. It returns how many
// runtimes it killed.
func (f *Function) Crash() int {
	f.mu.Lock()
	busy := slices.Clone(f.all)
	for _, in := range f.idle {
		busy = slices.DeleteFunc(busy, func(b *instance) bool { return b == in })
	}
	f.mu.Unlock()
	killed := 0
	for _, in := range busy {
		for _, pid := range runtimesOf(f.o.Bootstrap, in.api) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
	}
	return killed
}

// Stats returns what the function did so far.
func (f *Function) Stats() FunctionStats {
	return FunctionStats{Invocations: f.invocations.Load(), ColdStarts: f.coldStarts.Load(), FunctionErrors: f.functionErrors.Load(), Restarts: f.restarts.Load()}
}

// Invoke invokes the function synchronously with payload (a JSON event) on a free emulator,
// waiting for one while all are busy, and returns the function's response. A function error is
// a *FunctionError (see errors.As); any other error means the invocation did not complete in
// the emulator. An invocation that has started runs to its end even when ctx ends first (as in
// Lambda); Invoke then returns ctx's error at once.
func (f *Function) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		in, err := f.acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("invoke %s: %w", f.o.Name, err)
		}
		done := make(chan answer, 1)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			done <- f.run(in, payload)
		}()
		select {
		case a := <-done:
			if a.refused && attempt == 0 {
				continue // the emulator was gone and nothing ran: once more, on a fresh one
			}
			return f.outcome(a)
		case <-ctx.Done():
			return nil, fmt.Errorf("invoke %s: %w (the invocation runs on)", f.o.Name, ctx.Err())
		}
	}
}

// answer is what an emulator said to one invocation.
type answer struct {
	status  int
	body    []byte
	err     error
	refused bool // the connection was refused: nothing ran
}

// run sends one invocation to in, lends in back when it is done, and replaces in when the answer
// leaves its state in doubt.
func (f *Function) run(in *instance, payload []byte) answer {
	defer f.release(in)
	cold := !in.warm
	a := in.invoke(payload)
	if !a.refused {
		f.invocations.Add(1)
		if cold {
			f.coldStarts.Add(1)
		}
	}
	switch {
	case a.err == nil && a.status == http.StatusOK && !timedOut(a.body):
		in.warm = true
	case a.err == nil && (a.status == http.StatusOK || a.status == http.StatusBadGateway):
		// A timeout or a runtime that exited: the emulator starts a new runtime next time.
		in.warm = false
	default:
		// No answer, or one the emulator gives when it is in a state of its own (AlreadyReserved,
		// reservation done): the emulator is replaced before its next use.
		in.warm = false
		in.stop()
	}
	return a
}

func timedOut(body []byte) bool { return bytes.HasPrefix(body, []byte("Task timed out after ")) }

// outcome turns an emulator's answer into Invoke's result.
func (f *Function) outcome(a answer) ([]byte, error) {
	if a.err != nil {
		return nil, fmt.Errorf("invoke %s: %w", f.o.Name, a.err)
	}
	var fe *FunctionError
	switch {
	case a.status == http.StatusOK && timedOut(a.body):
		fe = &FunctionError{Type: "Sandbox.Timedout", Message: string(a.body), Payload: a.body}
	case a.status == http.StatusOK:
		fe = errorDocument(a.body)
		if fe == nil {
			return a.body, nil
		}
	case a.status == http.StatusBadGateway:
		if fe = errorDocument(a.body); fe == nil {
			// An init that failed (the bootstrap exited before asking for work) comes back
			// without a document; the runtime's own output says why.
			msg := strings.TrimSpace(string(a.body))
			if msg == "" {
				msg = "the runtime failed without an error document (its output is in the function's log)"
			}
			fe = &FunctionError{Type: "Runtime.Unknown", Message: msg, Payload: a.body}
		}
	default:
		return nil, fmt.Errorf("invoke %s: emulator answered %d: %s", f.o.Name, a.status, bytes.TrimSpace(a.body))
	}
	f.functionErrors.Add(1)
	return nil, fmt.Errorf("invoke %s: %w", f.o.Name, fe)
}

// errorDocument returns the error body is, or nil: a JSON object with errorMessage and errorType
// and no keys but those, stackTrace and cause (the shape every Lambda runtime reports an error
// in; SAM CLI tells errors from results the same way).
func errorDocument(body []byte) *FunctionError {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return nil
	}
	_, hasMsg := doc["errorMessage"]
	_, hasType := doc["errorType"]
	if !hasMsg || !hasType {
		return nil
	}
	for k := range doc {
		if k != "errorMessage" && k != "errorType" && k != "stackTrace" && k != "cause" {
			return nil
		}
	}
	fe := &FunctionError{Payload: body}
	_ = json.Unmarshal(doc["errorType"], &fe.Type)
	_ = json.Unmarshal(doc["errorMessage"], &fe.Message)
	return fe
}

// acquire lends out a free instance, started afresh if its emulator is gone.
func (f *Function) acquire(ctx context.Context) (*instance, error) {
	select {
	case <-f.closed:
		return nil, ErrClosed
	default:
	}
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-f.closed:
		return nil, ErrClosed
	}
	f.mu.Lock()
	in := f.idle[len(f.idle)-1]
	f.idle = f.idle[:len(f.idle)-1]
	f.mu.Unlock()
	if !in.alive() {
		f.restarts.Add(1)
		if err := in.start(ctx); err != nil {
			f.release(in)
			return nil, err
		}
	}
	return in, nil
}

func (f *Function) release(in *instance) {
	f.mu.Lock()
	f.idle = append(f.idle, in)
	f.mu.Unlock()
	<-f.sem
}

// Close stops every emulator and the runtimes they started, and waits until they are gone.
// Invocations in flight end with an error.
func (f *Function) Close() error {
	f.once.Do(func() {
		close(f.closed)
		var wg sync.WaitGroup
		for _, in := range f.all {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in.stop()
			}()
		}
		wg.Wait()
		f.wg.Wait()
	})
	return nil
}

// instance is one emulator and the runtime it runs.
type instance struct {
	f *Function
	n int
	// pmu guards starting and stopping the emulator, which Close may do while the instance is
	// lent out.
	pmu  sync.Mutex
	addr string // the emulator's invoke API
	api  string // the Runtime API it serves the runtime on
	cmd  *exec.Cmd
	done chan struct{} // closed when the emulator exited
	warm bool          // the runtime is up (the next invocation is no cold start)
}

func (in *instance) alive() bool {
	if in.done == nil {
		return false
	}
	select {
	case <-in.done:
		return false
	default:
		return true
	}
}

// start starts the emulator on two free loopback ports and waits until it accepts connections.
// A port taken between choosing and binding makes the emulator exit; then it tries again.
func (in *instance) start(ctx context.Context) error {
	in.pmu.Lock()
	defer in.pmu.Unlock()
	var lastErr error
	for range 3 {
		select {
		case <-in.f.closed:
			return ErrClosed
		default:
		}
		addr, err := freePort()
		if err != nil {
			return err
		}
		api, err := freePort()
		if err != nil {
			return err
		}
		o := in.f.o
		cmd := exec.Command(o.RIE,
			"--log-level", "warn",
			"--runtime-interface-emulator-address", addr,
			"--runtime-api-address", api,
			o.Bootstrap)
		cmd.Dir = filepath.Dir(o.Bootstrap)
		cmd.Env = in.f.env
		cmd.Stdout = &lineWriter{dst: in.f.log}
		cmd.Stderr = &lineWriter{dst: in.f.log}
		cmd.SysProcAttr = sysProcAttr()
		// A runtime left by a crashed emulator holds its output pipe; do not wait for it.
		cmd.WaitDelay = time.Second
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start aws-lambda-rie: %w", err)
		}
		done := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			cmd.Stdout.(*lineWriter).flush()
			cmd.Stderr.(*lineWriter).flush()
			close(done)
		}()
		in.addr, in.api, in.cmd, in.done, in.warm = addr, api, cmd, done, false
		if lastErr = in.waitReady(ctx); lastErr == nil {
			return nil
		}
		in.stopLocked()
	}
	return lastErr
}

func (in *instance) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", in.addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-in.done:
			return fmt.Errorf("aws-lambda-rie %d exited at start (%v)", in.n, in.cmd.ProcessState)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return fmt.Errorf("aws-lambda-rie %d did not listen on %s within 10 s", in.n, in.addr)
}

// invoke posts one invocation to the emulator. The emulator enforces the function's timeout;
// the client's own limit only covers an emulator that hangs.
func (in *instance) invoke(payload []byte) answer {
	limit := in.f.o.Timeout + 30*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+in.addr+"/2015-03-31/functions/function/invocations", bytes.NewReader(payload))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := in.f.client.Do(req)
	if err != nil {
		return answer{err: err, refused: errors.Is(err, syscall.ECONNREFUSED)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{err: fmt.Errorf("read answer: %w", err)}
	}
	return answer{status: resp.StatusCode, body: body}
}

// stop ends the emulator and its runtime. The runtime leads a process group of its own and
// outlives an emulator that crashed (holding its output open), so it is killed first, found by
// what it runs and whom it talks to; then the emulator's group gets SIGTERM, and SIGKILL after
// 2 s.
func (in *instance) stop() {
	in.pmu.Lock()
	defer in.pmu.Unlock()
	in.stopLocked()
}

func (in *instance) stopLocked() {
	if in.cmd == nil {
		return
	}
	for _, pid := range runtimesOf(in.f.o.Bootstrap, in.api) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if in.alive() {
		pgid := in.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-in.done:
		case <-time.After(2 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-in.done
		}
	}
}

// freePort returns a loopback address with a port free at the time of asking.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// lockedWriter serialises writes from many emulators into one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// lineWriter passes whole lines on, so that lines of different emulators never interleave.
type lineWriter struct {
	dst *lockedWriter
	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := w.dst.Write(w.buf[:i+1]); err != nil {
			return len(p), err
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		_, _ = w.dst.Write(append(w.buf, '\n'))
		w.buf = nil
	}
}

// Invoke invokes fn once with event: JSON as given when it is []byte or json.RawMessage,
// otherwise event encoded as JSON (an Image Builder state change, a CloudFormation custom
// resource request, ...). It returns the function's response, or its error as Function.Invoke
// does.
func Invoke(ctx context.Context, fn Invoker, event any) ([]byte, error) {
	var payload []byte
	switch e := event.(type) {
	case []byte:
		payload = e
	case json.RawMessage:
		payload = e
	default:
		var err error
		if payload, err = json.Marshal(event); err != nil {
			return nil, fmt.Errorf("invoke: encode event: %w", err)
		}
	}
	return fn.Invoke(ctx, payload)
}
