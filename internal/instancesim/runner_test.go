package instancesim

import (
	"bytes"
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRunScript runs the stand-in run.sh as the bootstrap does (a clean environment: only the
// bootstrap's PATH and HOME, so the URL, CA file and tools must be written into the script) against
// the stand-in runner server, over TLS (curl --cacert with the server's certificate) or plain HTTP.
// Each case names the server's behaviour, what the test does meanwhile, and the exit status and
// output lines (timestamps cut) run.sh must give. In every case the server got exactly the config
// run.sh was given, and run.sh leaves no file and no process behind.
func TestRunScript(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	type server struct {
		job, conclusion string
		refuse          bool
	}
	tests := []struct {
		name   string
		tls    bool
		server server
		// during runs after run.sh printed the line with afterLine: remove the runner or
		// send run.sh SIGTERM.
		afterLine, during string
		args              []string // default --jitconfig <config>

		wantExit     int
		wantOutput   []string
		wantRequests []string
	}{
		{
			name: "takes its job over TLS", tls: true, server: server{job: "build", conclusion: "Succeeded"},
			wantOutput: []string{
				"Connected to GitHub as runner {name} (id 1)", "Current runner version: '2.331.0'", "Listening for Jobs",
				"Running job: build", "Job build completed with result: Succeeded",
			},
			wantRequests: []string{"POST /_sim/runners", "GET /_sim/runners/{name}/job", "GET /_sim/runners/{name}/done"},
		},
		{
			name: "takes its job over plain HTTP", server: server{job: "test (ubuntu, 3.12)", conclusion: "Failed"},
			wantOutput: []string{
				"Connected to GitHub as runner {name} (id 1)", "Current runner version: '2.331.0'", "Listening for Jobs",
				"Running job: test (ubuntu, 3.12)", "Job test (ubuntu, 3.12) completed with result: Failed",
			},
			wantRequests: []string{"POST /_sim/runners", "GET /_sim/runners/{name}/job", "GET /_sim/runners/{name}/done"},
		},
		{
			name: "config refused", tls: true, server: server{refuse: true},
			wantExit:     1,
			wantOutput:   []string{"Failed to connect the runner: HTTP 409: JIT config already used"},
			wantRequests: []string{"POST /_sim/runners"},
		},
		{
			name: "runner removed while it waits for a job", server: server{},
			afterLine: "Listening for Jobs", during: "remove",
			wantExit: 1,
			wantOutput: []string{
				"Connected to GitHub as runner {name} (id 1)", "Current runner version: '2.331.0'", "Listening for Jobs",
				"Runner {name} was removed",
			},
			wantRequests: []string{"POST /_sim/runners", "GET /_sim/runners/{name}/job"},
		},
		{
			name: "stopped by SIGTERM during its job", tls: true, server: server{job: "build"},
			afterLine: "Running job: build", during: "term",
			wantExit: 143,
			wantOutput: []string{
				"Connected to GitHub as runner {name} (id 1)", "Current runner version: '2.331.0'", "Listening for Jobs",
				"Running job: build", "Runner stopped by a signal",
			},
			wantRequests: []string{"POST /_sim/runners", "GET /_sim/runners/{name}/job", "GET /_sim/runners/{name}/done"},
		},
		{
			name: "no config", args: []string{"--jitconfig"},
			wantExit:   2,
			wantOutput: []string{"usage: run.sh --jitconfig <encoded JIT config>"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := newRunnerServer(tc.server.job, tc.server.conclusion)
			rs.Refuse = tc.server.refuse
			var srv *httptest.Server
			var ca string
			if tc.tls {
				srv = httptest.NewTLSServer(rs.handler())
				ca = filepath.Join(t.TempDir(), "ca.pem")
				if err := os.WriteFile(ca, caPEM(srv), 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				srv = httptest.NewServer(rs.handler())
			}
			t.Cleanup(srv.Close)

			jit := newJITConfig(t, "spotrunner-i-"+randomHex(t, 17))
			runner := t.TempDir()
			script := filepath.Join(runner, "run.sh")
			if err := os.WriteFile(script, []byte(runScript(tools, srv.URL+"/", ca, filepath.Join(runner, "_sim"))), 0o755); err != nil {
				t.Fatal(err)
			}
			args := tc.args
			if args == nil {
				args = []string{"--jitconfig", jit.value}
			}
			cmd := exec.Command(script, args...)
			cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/ubuntu"}
			cmd.Dir = runner
			out := &syncBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pgid := cmd.Process.Pid
			t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()

			if tc.during != "" {
				if !waitFor(20*time.Second, func() bool { return strings.Contains(out.String(), tc.afterLine) }) {
					t.Fatalf("run.sh never printed %q; output:\n%s", tc.afterLine, out.String())
				}
				switch tc.during {
				case "remove":
					rs.remove(jit.name)
				case "term": // while its long poll for the job's end is open
					if !waitFor(10*time.Second, func() bool { return len(rs.seen()) == 3 }) {
						t.Fatalf("run.sh never asked for the job's end; requests: %v", rs.seen())
					}
					if err := syscall.Kill(pgid, syscall.SIGTERM); err != nil {
						t.Fatal(err)
					}
				}
			}
			var err error
			select {
			case err = <-exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("run.sh did not exit; output:\n%s", out.String())
			}
			exit := 0
			var exitErr *exec.ExitError
			if errors.As(err, &exitErr) {
				exit = exitErr.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}

			expand := strings.NewReplacer("{name}", jit.name).Replace
			if exit != tc.wantExit {
				t.Errorf("exit status %d, want %d; output:\n%s", exit, tc.wantExit, out.String())
			}
			stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ: `)
			var got []string
			for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
				got = append(got, stamp.ReplaceAllString(l, ""))
			}
			var want []string
			for _, l := range tc.wantOutput {
				want = append(want, expand(l))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			var wantReqs []string
			for _, r := range tc.wantRequests {
				wantReqs = append(wantReqs, expand(r))
			}
			if diff := cmp.Diff(wantReqs, rs.seen()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if tc.args == nil {
				if diff := cmp.Diff([]string{jit.value}, rs.posted()); diff != "" {
					t.Errorf("configs posted (-want +got):\n%s", diff)
				}
			}
			if !waitGroupEmpty(pgid, 3*time.Second) {
				t.Errorf("processes left in run.sh's group: %v", groupMembers(pgid))
			}
			err = filepath.WalkDir(runner, func(p string, d fs.DirEntry, err error) error {
				if err == nil && p != runner && p != script {
					t.Errorf("run.sh left %s behind", p)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the command's writes and the test's reads.
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
