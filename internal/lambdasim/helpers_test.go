package lambdasim

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spotrunner/spotrunner/internal/world"
)

// echoDir holds the test Lambda (testdata/echo), built once per test process.
var echoDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if echoDir != "" {
		os.RemoveAll(echoDir)
	}
	os.Exit(code)
}

var buildEcho = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "lambdasim-echo-")
	if err != nil {
		return "", err
	}
	echoDir = dir
	bins, err := goBuild(context.Background(), world.Root(), dir, "./internal/lambdasim/testdata/echo")
	if err != nil {
		return "", err
	}
	return bins["echo"], nil
})

// missing ends the test as the local world's absence does: it fails when the world is required
// (SPOTRUNNER_WORLD=1), and skips it otherwise.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if world.Required() {
		t.Fatalf("local world: "+format, args...)
	}
	t.Skipf("local world not installed (run scripts/deps.sh, then `make test`): "+format, args...)
}

// rie returns aws-lambda-rie, or ends the test as missing does.
func rie(t testing.TB) string {
	t.Helper()
	p, err := LookRIE(world.Root())
	if err != nil {
		missing(t, "%v", err)
	}
	return p
}

// echoBootstrap returns the test Lambda under a path of this test's own (a hard link named
// bootstrap in its temporary directory), so that its processes can be told from other tests'.
func echoBootstrap(t testing.TB) string {
	t.Helper()
	src, err := buildEcho()
	if err != nil {
		t.Fatalf("build the test Lambda: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "bootstrap")
	if err := os.Link(src, dst); err != nil {
		t.Fatalf("link the test Lambda: %v", err)
	}
	return dst
}

// startEcho starts the test Lambda with o (Name, RIE, Bootstrap and Endpoint defaulted); it is
// closed when the test ends.
func startEcho(t testing.TB, o FunctionOptions) *Function {
	t.Helper()
	o.RIE = rie(t)
	if o.Bootstrap == "" {
		o.Bootstrap = echoBootstrap(t)
	}
	if o.Name == "" {
		o.Name = "echo-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	}
	if o.Endpoint == "" {
		o.Endpoint = "http://127.0.0.1:9" // the echo Lambda calls no AWS API
	}
	f, err := StartFunction(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// echoReply is what the test Lambda answers a control document with.
type echoReply struct {
	Received    json.RawMessage   `json:"received"`
	PID         int               `json:"pid"`
	Env         map[string]string `json:"env"`
	RemainingMs int64             `json:"remainingMs"`
	FunctionARN string            `json:"functionArn"`
	RequestID   string            `json:"requestId"`
}

func decodeReply(t testing.TB, raw []byte) echoReply {
	t.Helper()
	var r echoReply
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("decode reply %s: %v", raw, err)
	}
	return r
}

// recording is one event the test Lambda recorded (ECHO_RECORD), and when.
type recording[T any] struct {
	AtMs  int64 `json:"atMs"`
	Event T     `json:"event"`
}

// recorded reads the events the test Lambda recorded.
func recorded[T any](t testing.TB, path string) []recording[T] {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []recording[T]
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if line == "" {
			continue
		}
		var v recording[T]
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("recorded event %s: %v", line, err)
		}
		out = append(out, v)
	}
	return out
}

// processesRunning returns the pids of live (not zombie) processes running exe.
func processesRunning(t testing.TB, exe string) []int {
	t.Helper()
	var out []int
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || link != exe {
			continue
		}
		var pid int
		if err := json.Unmarshal([]byte(e.Name()), &pid); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for a Function's log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
