package lambdasim

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestInvokeBeyondPool: fixture is the echo Lambda with a pool of 2 emulators. Eight invocations
// that each sleep 300 ms are made at once: all succeed (none is sent to a busy emulator, which
// would crash it with AlreadyReserved), no emulator is replaced, at most two runtimes serve them
// (two cold starts), and they take four rounds.
func TestInvokeBeyondPool(t *testing.T) {
	t.Parallel()
	f := startEcho(t, FunctionOptions{Instances: 2, Timeout: 5 * time.Second})
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	pids := make([]int, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := f.Invoke(context.Background(), []byte(`{"sleep":"300ms"}`))
			errs[i] = err
			if err == nil {
				pids[i] = decodeReply(t, out).PID
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("invocations failed: %v", err)
	}
	distinct := map[int]bool{}
	for _, p := range pids {
		distinct[p] = true
	}
	if len(distinct) > 2 {
		t.Errorf("runtimes = %d, want at most the pool's 2", len(distinct))
	}
	if elapsed < 4*300*time.Millisecond {
		t.Errorf("8 invocations of 300 ms on 2 emulators took %v: some ran concurrently on one", elapsed)
	}
	want := FunctionStats{Invocations: n, ColdStarts: 2}
	if diff := cmp.Diff(want, f.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestInvokeOutcomes: fixture is the echo Lambda, one emulator, a 1 s timeout. Each case is one
// invocation, in order on the same emulator: a result is returned as is; a returned error, a
// panic, an exit and a timeout are *FunctionError with the runtime's errorType; after each, the
// next invocation runs on a fresh runtime (a cold start) and succeeds.
func TestInvokeOutcomes(t *testing.T) {
	t.Parallel()
	f := startEcho(t, FunctionOptions{Timeout: time.Second})
	for _, c := range []struct {
		name     string
		payload  string
		wantType string // "" for a result
		wantMsg  string
	}{
		{name: "result", payload: `{"n":1}`},
		{name: "returned error", payload: `{"error":"boom"}`, wantType: "errorString", wantMsg: "boom"},
		{name: "after an error", payload: `{"n":2}`},
		{name: "panic", payload: `{"panic":true}`, wantType: "string", wantMsg: "echo: asked to panic"},
		{name: "after a panic", payload: `{"n":3}`},
		{name: "exit", payload: `{"exit":true}`, wantType: "Runtime.ExitError", wantMsg: "exit status 3"},
		{name: "after an exit", payload: `{"n":4}`},
		{name: "timeout", payload: `{"sleep":"3s"}`, wantType: "Sandbox.Timedout", wantMsg: "Task timed out after 1.00 seconds"},
		{name: "after a timeout", payload: `{"n":5}`},
	} {
		out, err := f.Invoke(context.Background(), []byte(c.payload))
		if c.wantType == "" {
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if got := string(decodeReply(t, out).Received); got != c.payload {
				t.Errorf("%s: received %s, want %s", c.name, got, c.payload)
			}
			continue
		}
		var fe *FunctionError
		if !errors.As(err, &fe) {
			t.Fatalf("%s: err = %v, want a *FunctionError", c.name, err)
		}
		if fe.Type != c.wantType || !strings.Contains(fe.Message, c.wantMsg) {
			t.Errorf("%s: function error %q %q, want %q containing %q", c.name, fe.Type, fe.Message, c.wantType, c.wantMsg)
		}
	}
	// The first invocation, and each after the runtime went away (panic, exit, timeout), start
	// it; a returned error keeps it.
	want := FunctionStats{Invocations: 9, ColdStarts: 4, FunctionErrors: 4}
	if diff := cmp.Diff(want, f.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestFunctionEnvironment: fixture is the echo Lambda with an environment of its own. The
// runtime sees that environment, what Lambda sets (name, region, memory, handler, credentials),
// the emulator's timeout and the loopback endpoint; its context carries the deadline and the
// function's ARN. Options Lambda or the local world refuse are refused before anything starts.
func TestFunctionEnvironment(t *testing.T) {
	t.Parallel()
	f := startEcho(t, FunctionOptions{
		Name:     "SpotRunnerStack-EchoFunction-ABC",
		Env:      map[string]string{"QUEUE_URL": "http://127.0.0.1:9/q", "LOG_LEVEL": "debug"},
		Endpoint: "http://127.0.0.1:4566",
		Region:   "eu-west-1",
		Timeout:  8 * time.Second,
		MemoryMB: 256,
	})
	names := []string{"QUEUE_URL", "LOG_LEVEL", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_TIMEOUT",
		"AWS_ACCESS_KEY_ID", "_HANDLER", "AWS_LAMBDA_RUNTIME_API", "HOME"}
	payload := `{"env":["` + strings.Join(names, `","`) + `"]}`
	out, err := f.Invoke(context.Background(), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	got := decodeReply(t, out)
	if !strings.HasPrefix(got.Env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:") {
		t.Errorf("AWS_LAMBDA_RUNTIME_API = %q, want a loopback address", got.Env["AWS_LAMBDA_RUNTIME_API"])
	}
	delete(got.Env, "AWS_LAMBDA_RUNTIME_API")
	want := map[string]string{
		"QUEUE_URL": "http://127.0.0.1:9/q", "LOG_LEVEL": "debug", "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
		"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_LAMBDA_FUNCTION_NAME": "SpotRunnerStack-EchoFunction-ABC",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_FUNCTION_TIMEOUT": "8", "AWS_ACCESS_KEY_ID": "testing",
		"_HANDLER": "bootstrap", "HOME": "",
	}
	if diff := cmp.Diff(want, got.Env); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
	if got.RemainingMs <= 7000 || got.RemainingMs > 8000 {
		t.Errorf("remaining time %d ms, want just under the 8 s timeout", got.RemainingMs)
	}
	if !strings.HasSuffix(got.FunctionARN, ":function:SpotRunnerStack-EchoFunction-ABC") {
		t.Errorf("function ARN %q", got.FunctionARN)
	}

	for _, c := range []struct {
		name string
		o    FunctionOptions
		want string
	}{
		{"reserved variable", FunctionOptions{Env: map[string]string{"AWS_REGION": "x"}, Endpoint: "http://127.0.0.1:1"}, "reserved"},
		{"endpoint off loopback", FunctionOptions{Endpoint: "https://sqs.us-east-1.amazonaws.com"}, "not on loopback"},
		{"no endpoint", FunctionOptions{}, "want http://127.0.0.1"},
	} {
		c.o.Name, c.o.Bootstrap, c.o.RIE = "x", "/nonexistent/bootstrap", "/nonexistent/rie"
		if _, err := StartFunction(context.Background(), c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one saying %q", c.name, err, c.want)
		}
	}
}

// TestEmulatorCrash: fixture is the echo Lambda with one emulator, warmed by one invocation, then
// killed (SIGKILL to its process group) as a crash would end it. The next invocation is served
// by a replacement (one restart, a cold start) and succeeds.
func TestEmulatorCrash(t *testing.T) {
	t.Parallel()
	f := startEcho(t, FunctionOptions{})
	if _, err := f.Invoke(context.Background(), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	in := f.all[0]
	if err := syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-in.done
	if _, err := f.Invoke(context.Background(), []byte(`{"after":"crash"}`)); err != nil {
		t.Fatalf("invocation after the crash: %v", err)
	}
	want := FunctionStats{Invocations: 2, ColdStarts: 2, Restarts: 1}
	if diff := cmp.Diff(want, f.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestEmulatorCrashMidway: fixture is the echo Lambda with one emulator, busy with a 2 s
// invocation when its emulator process alone is killed; its runtime lives on (it leads a process
// group of its own) inside the handler. The invocation fails at once with an error that is no
// function error (it may or may not have run); the orphaned runtime is killed; the next
// invocation runs on a replacement, whose runtime is then the only one.
func TestEmulatorCrashMidway(t *testing.T) {
	t.Parallel()
	bootstrap := echoBootstrap(t)
	f := startEcho(t, FunctionOptions{Bootstrap: bootstrap, Timeout: 10 * time.Second})
	pid := f.all[0].cmd.Process.Pid
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}()
	start := time.Now()
	_, err := f.Invoke(context.Background(), []byte(`{"sleep":"2s"}`))
	var fe *FunctionError
	if err == nil || errors.As(err, &fe) || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("invocation whose emulator died: err = %v after %v, want a prompt error that is no function error", err, time.Since(start))
	}
	if _, err := f.Invoke(context.Background(), []byte(`{"after":"crash"}`)); err != nil {
		t.Fatalf("invocation after the crash: %v", err)
	}
	if got := processesRunning(t, bootstrap); len(got) != 1 {
		t.Errorf("runtimes running: %v, want the replacement's alone", got)
	}
	want := FunctionStats{Invocations: 2, ColdStarts: 2, Restarts: 1}
	if diff := cmp.Diff(want, f.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestInitFailure: fixture is a bootstrap that exits at once (/bin/false), as a service whose
// configuration does not validate does. Its invocation is a *FunctionError, and the function's
// log holds the emulator's account of the exit.
func TestInitFailure(t *testing.T) {
	t.Parallel()
	var log syncBuffer
	f := startEcho(t, FunctionOptions{Bootstrap: "/bin/false", Log: &log})
	_, err := f.Invoke(context.Background(), []byte(`{}`))
	var fe *FunctionError
	if !errors.As(err, &fe) || fe.Type != "Runtime.Unknown" {
		t.Fatalf("err = %v, want a Runtime.Unknown function error", err)
	}
	f.Close()
	if !strings.Contains(log.String(), "Runtime exited with error: exit status 1") {
		t.Errorf("log does not tell the exit:\n%s", log.String())
	}
}

// TestCloseLeavesNothing: fixture is the echo Lambda with two emulators, both runtimes started,
// one busy with a 10 s invocation whose caller gave up. Close returns within a few seconds and
// leaves no runtime of this test running; the given-up Invoke returned at once; Invoke after
// Close fails with ErrClosed.
func TestCloseLeavesNothing(t *testing.T) {
	t.Parallel()
	bootstrap := echoBootstrap(t)
	f := startEcho(t, FunctionOptions{Bootstrap: bootstrap, Instances: 2, Timeout: 30 * time.Second})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.Invoke(context.Background(), []byte(`{"sleep":"200ms"}`)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := len(processesRunning(t, bootstrap)); got != 2 {
		t.Fatalf("%d runtimes running before Close, want 2", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := f.Invoke(ctx, []byte(`{"sleep":"10s"}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("given-up invocation: err = %v, want the deadline", err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("given-up invocation returned after %v", waited)
	}

	start = time.Now()
	f.Close()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %v", took)
	}
	if left := processesRunning(t, bootstrap); len(left) > 0 {
		t.Errorf("runtimes still running after Close: %v", left)
	}
	for _, in := range f.all {
		if in.alive() {
			t.Errorf("emulator %d still running after Close", in.n)
		}
	}
	if _, err := f.Invoke(context.Background(), []byte(`{}`)); !errors.Is(err, ErrClosed) {
		t.Errorf("Invoke after Close: err = %v, want ErrClosed", err)
	}
}

// TestErrorDocument: the answers the emulator gives with status 200 that are function errors
// (an error document: errorMessage and errorType, maybe stackTrace and cause) and those that are
// results (anything else, including documents that merely mention the keys).
func TestErrorDocument(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		body string
		want *FunctionError
	}{
		{`{"errorMessage":"boom","errorType":"errorString"}`, &FunctionError{Type: "errorString", Message: "boom"}},
		{`{"errorMessage":"x","errorType":"T","stackTrace":[],"cause":{}}`, &FunctionError{Type: "T", Message: "x"}},
		{`{"errorMessage":"x","errorType":"T","statusCode":200}`, nil},
		{`{"errorMessage":"x"}`, nil},
		{`{"statusCode":200,"body":"ok"}`, nil},
		{`null`, nil},
		{`"errorType"`, nil},
	} {
		got := errorDocument([]byte(c.body))
		if got != nil {
			got.Payload = nil
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.body, diff)
		}
	}
}

// TestInvokeEvent: fixture is the echo Lambda. Invoke sends a Go value as its JSON, and JSON
// bytes as they are; a value that cannot be encoded is refused before anything is invoked.
func TestInvokeEvent(t *testing.T) {
	t.Parallel()
	f := startEcho(t, FunctionOptions{})
	for _, c := range []struct {
		name  string
		event any
		want  string
	}{
		{"value", map[string]any{"detail-type": "EC2 Image Builder Image State Change", "n": 1}, `{"detail-type":"EC2 Image Builder Image State Change","n":1}`},
		{"bytes", []byte(`{"RequestType":"Create"}`), `{"RequestType":"Create"}`},
		{"raw message", json.RawMessage(`{"a":[1,2]}`), `{"a":[1,2]}`},
	} {
		out, err := Invoke(context.Background(), f, c.event)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := string(decodeReply(t, out).Received); got != c.want {
			t.Errorf("%s: received %s, want %s", c.name, got, c.want)
		}
	}
	if _, err := Invoke(context.Background(), f, make(chan int)); err == nil {
		t.Error("an event that is no JSON was invoked")
	}
	if got := f.Stats().Invocations; got != 3 {
		t.Errorf("%d invocations, want 3", got)
	}
}
