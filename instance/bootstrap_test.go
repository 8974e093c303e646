package instance

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/google/go-cmp/cmp"

	"github.com/spotrunner/spotrunner/internal/world"
)

// What the stubs record in calls, in order; together they show the order of the bootstrap's
// external effects (the metadata block must come before the runner).
const (
	callCheck    = "runuser -u ubuntu test"
	callBlock4   = "iptables -w -I OUTPUT -d 169.254.169.254/32 -m owner --uid-owner ubuntu -j REJECT"
	callBlock6   = "ip6tables -w -I OUTPUT -d fd00:ec2::254/128 -m owner --uid-owner ubuntu -j REJECT"
	callRunner   = "runuser -u ubuntu env"
	callRunSh    = "run.sh"
	callShutdown = "shutdown -h now"
)

// runnerPath is the PATH the bootstrap gives the runner (env -i).
const runnerPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// TestBootstrap runs instance/bootstrap.sh the way spotrunner.service runs it on a runner
// instance, with these fixtures per case:
//   - a fake IMDSv2 on 127.0.0.1 (instance id, region, the case's instance tags) that answers a GET
//     only when it carries the session token (401 otherwise) and records every request;
//   - moto's SSM from the local world, behind a recording proxy, holding this instance's JIT config
//     /spotrunner/<deployment>/jit/<id> (SecureString, tagged spotrunner:managed and spotrunner:instance-arn, as
//     the provisioner writes it; now, two seconds late, or never) and another instance's;
//   - a fake runner folder whose run.sh stub records its arguments and environment and then exits,
//     idles, runs a "job", or leaves a worker log, as the case says (or no run.sh: a broken image);
//   - stubs first on PATH for runuser, id, iptables, ip6tables, docker, logger and shutdown, which
//     record their calls; PATH holds nothing else but the real tools the script needs, so nothing
//     real can shut down or firewall this machine.
//
// Each case names what must happen: the exit status, the stubs' calls in order (the metadata block
// before the runner; shutdown or not), the reason logged for the shutdown, the SSM calls (only this
// instance's parameter: read, then deleted), whether the metadata service was used. In every case:
// every metadata GET carried the token, the other instance's parameter is untouched, console and
// journal carry the same timestamped lines, and no JIT config appears in any output or file. When
// the runner starts it runs as ubuntu with exactly --jitconfig <config>, that config marked
// disableUpdate, and a clean environment.
func TestBootstrap(t *testing.T) {
	t.Parallel()
	endpoint := world.Endpoint(t)
	tools := sandboxTools(t)
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	client := ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(endpoint) })

	managed := func(kv ...string) map[string]string {
		tags := map[string]string{"spotrunner:managed": "true", "spotrunner:deployment": "SpotRunnerStack", "Name": "spotrunner"}
		for i := 0; i+1 < len(kv); i += 2 {
			tags[kv[i]] = kv[i+1]
		}
		return tags
	}
	getDelete := []ssmCall{{"GetParameter", "{param}"}, {"DeleteParameter", "{param}"}}
	started := []string{callCheck, callBlock4, callBlock6, callRunner, callRunSh, callShutdown}

	tests := []struct {
		name    string
		args    []string
		tags    map[string]string // instance tags in the metadata; nil: metadata tags are off
		runner  string            // run.sh stub: exit, idle, busy, worker; "": no run.sh
		jit     string            // when the provisioner writes the config: now, late, never
		jitWait string            // SPOTRUNNER_JIT_WAIT_SECONDS

		wantExit   int
		wantCalls  []string
		wantReason string   // after "shutting down: "; "" when there is no shutdown
		wantLog    []string // console lines that must appear (after the timestamp)
		wantSSM    []ssmCall
		wantIMDS   bool
	}{
		{
			name: "runner exits after its job", tags: managed(), runner: "exit", jit: "now",
			wantCalls:  started,
			wantReason: "the runner exited with status 0",
			wantLog: []string{
				"instance {id} in us-east-1: idle limit 10 min, timeout 60 min",
				"read JIT config {param} (try 1)",
				"deleted JIT config {param}",
				"runner self-update disabled",
				"runner: {time}: Running job: build",
			},
			wantSSM: getDelete, wantIMDS: true,
		},
		{
			name: "no job within the idle limit", tags: managed("spotrunner:idle-minutes", "1"), runner: "idle", jit: "now",
			wantCalls:  started,
			wantReason: "no job started within the idle limit of 1 min",
			wantSSM:    getDelete, wantIMDS: true,
		},
		{
			name: "timeout with a job running", tags: managed("spotrunner:idle-minutes", "3", "spotrunner:timeout-minutes", "12"), runner: "busy", jit: "now",
			wantCalls:  started,
			wantReason: "the preset's timeout of 12 min was reached",
			wantLog:    []string{"job started"},
			wantSSM:    getDelete, wantIMDS: true,
		},
		{
			name: "job seen by its worker log", tags: managed("spotrunner:idle-minutes", "3", "spotrunner:timeout-minutes", "12"), runner: "worker", jit: "now",
			wantCalls:  started,
			wantReason: "the preset's timeout of 12 min was reached",
			wantLog:    []string{"job started"},
			wantSSM:    getDelete, wantIMDS: true,
		},
		{
			name: "bad tag value falls back to the default", tags: managed("spotrunner:idle-minutes", "soon"), runner: "exit", jit: "now",
			wantCalls:  started,
			wantReason: "the runner exited with status 0",
			wantLog: []string{
				"warning: tag spotrunner:idle-minutes is not a positive number of minutes; using 10",
				"instance {id} in us-east-1: idle limit 10 min, timeout 60 min",
			},
			wantSSM: getDelete, wantIMDS: true,
		},
		{
			name: "config written after boot", tags: managed(), runner: "exit", jit: "late", jitWait: "30",
			wantCalls:  started,
			wantReason: "the runner exited with status 0",
			wantSSM:    getDelete, wantIMDS: true,
		},
		{
			name: "config never written", tags: managed(), runner: "exit", jit: "never", jitWait: "2",
			wantExit:   1,
			wantCalls:  []string{callCheck, callBlock4, callBlock6, callShutdown},
			wantReason: "JIT config {param} did not appear within 2 s",
			wantSSM:    []ssmCall{{"GetParameter", "{param}"}}, wantIMDS: true,
		},
		{
			name: "no deployment tag", tags: managed("spotrunner:deployment", ""), runner: "exit", jit: "now",
			wantExit:   1,
			wantCalls:  []string{callCheck, callShutdown},
			wantReason: "instance {id} has no valid spotrunner:deployment tag (the stack that launched it)",
			wantIMDS:   true,
		},
		{
			name: "image without the runner", tags: managed(), runner: "", jit: "now",
			wantExit:   1,
			wantCalls:  []string{callCheck, callShutdown},
			wantReason: "this image cannot run Spot Runner jobs (requirements above)",
			wantLog:    []string{"requirement missing: the GitHub Actions runner at {runner} (run.sh, executable)"},
		},
		{
			name: "instance not managed by Spot Runner", tags: map[string]string{"Name": "imagebuilder-test"}, runner: "exit", jit: "now",
			wantCalls: []string{callCheck},
			wantLog:   []string{"instance {id} is not tagged spotrunner:managed=true (or instance metadata tags are off); leaving it alone"},
			wantIMDS:  true,
		},
		{
			name: "instance metadata tags off", tags: nil, runner: "exit", jit: "now",
			wantCalls: []string{callCheck},
			wantIMDS:  true,
		},
		{
			name: "check on a good image", args: []string{"--check"}, tags: managed(), runner: "exit", jit: "now",
			wantCalls: []string{callCheck},
			wantLog:   []string{"image requirements ok"},
		},
		{
			name: "check on a broken image", args: []string{"--check"}, tags: managed(), runner: "", jit: "now",
			wantExit:  1,
			wantCalls: []string{callCheck},
			wantLog:   []string{"requirement missing: the GitHub Actions runner at {runner} (run.sh, executable)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			id := "i-" + randomHex(t, 17)
			param := "/spotrunner/SpotRunnerStack/jit/" + id
			other := "/spotrunner/SpotRunnerStack/jit/i-" + randomHex(t, 17)
			runnerDir := filepath.Join(dir, "actions-runner")
			rec := filepath.Join(dir, "rec")
			for _, d := range []string{runnerDir, rec} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			expand := strings.NewReplacer("{id}", id, "{param}", param, "{runner}", runnerDir).Replace

			jit := newJITConfig(t, id)
			otherJIT := newJITConfig(t, "other")
			putJIT(t, client, other, otherJIT.value, instanceARN(other))
			if tc.jit == "now" {
				putJIT(t, client, param, jit.value, instanceARN(id))
			}

			imds := newFakeIMDS(id, tc.tags)
			imdsServer := httptest.NewServer(imds)
			t.Cleanup(imdsServer.Close)
			calls := newSSMRecorder(t, endpoint)
			ssmServer := httptest.NewServer(calls)
			t.Cleanup(ssmServer.Close)

			stubs := writeStubs(t, dir, rec)
			if tc.runner != "" {
				writeFile(t, filepath.Join(runnerDir, "run.sh"), runnerStub(rec, runnerDir, tc.runner), 0o755)
			}

			jitWait := tc.jitWait
			if jitWait == "" {
				jitWait = "10"
			}
			env := []string{
				"PATH=" + stubs + ":" + tools,
				"HOME=" + dir,
				"LANG=C.UTF-8",
				"SPOTRUNNER_IMDS_URL=" + imdsServer.URL,
				"SPOTRUNNER_RUNNER_DIR=" + runnerDir,
				"SPOTRUNNER_CONSOLE=" + filepath.Join(rec, "console"),
				"SPOTRUNNER_MINUTE_SECONDS=1",
				"SPOTRUNNER_JIT_WAIT_SECONDS=" + jitWait,
				"AWS_ENDPOINT_URL=" + ssmServer.URL,
				"AWS_EC2_METADATA_DISABLED=true",
			}
			for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"} {
				if v, ok := os.LookupEnv(k); ok {
					env = append(env, k+"="+v)
				}
			}

			late := make(chan struct{})
			if tc.jit == "late" {
				go func() {
					defer close(late)
					time.Sleep(2 * time.Second)
					putJIT(t, client, param, jit.value, instanceARN(id))
				}()
			} else {
				close(late)
			}

			exitCode := runBootstrap(t, filepath.Join(tools, "bash"), env, filepath.Join(rec, "stdout"), filepath.Join(rec, "stderr"), tc.args)
			<-late

			if exitCode != tc.wantExit {
				t.Errorf("exit status %d, want %d; stderr:\n%s", exitCode, tc.wantExit, readFile(t, filepath.Join(rec, "stderr")))
			}

			gotCalls := lines(readFile(t, filepath.Join(rec, "calls")))
			if diff := cmp.Diff(tc.wantCalls, gotCalls); diff != "" {
				t.Errorf("stub calls (-want +got):\n%s", diff)
			}

			console := lines(readFile(t, filepath.Join(rec, "console")))
			stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ spotrunner: `)
			var logged []string
			for _, l := range console {
				if !stamp.MatchString(l) {
					t.Errorf("console line without a timestamp: %q", l)
				}
				logged = append(logged, stamp.ReplaceAllString(l, ""))
			}
			journal := lines(readFile(t, filepath.Join(rec, "journal")))
			if diff := cmp.Diff(sorted(logged), sorted(journal)); diff != "" {
				t.Errorf("console and journal differ (-console +journal):\n%s", diff)
			}
			gotReason := ""
			for _, l := range logged {
				if r, ok := strings.CutPrefix(l, "shutting down: "); ok {
					gotReason = r
				}
			}
			if diff := cmp.Diff(expand(tc.wantReason), gotReason); diff != "" {
				t.Errorf("shutdown reason (-want +got):\n%s", diff)
			}
			timeless := regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ`)
			for _, want := range tc.wantLog {
				found := false
				for _, l := range logged {
					found = found || timeless.ReplaceAllString(l, "{time}") == expand(want)
				}
				if !found {
					t.Errorf("console lacks %q; it has:\n%s", expand(want), strings.Join(logged, "\n"))
				}
			}

			var wantSSM []ssmCall
			for _, c := range tc.wantSSM {
				wantSSM = append(wantSSM, ssmCall{c.Op, expand(c.Name)})
			}
			if diff := cmp.Diff(wantSSM, calls.distinct()); diff != "" {
				t.Errorf("SSM calls, repeats folded (-want +got):\n%s", diff)
			}
			deleted := len(wantSSM) == 2
			if tc.jit != "never" {
				if _, ok := getJIT(t, client, param); ok == deleted {
					t.Errorf("own parameter %s exists=%v after the run, want %v", param, ok, !deleted)
				}
			}
			if v, ok := getJIT(t, client, other); !ok || v != otherJIT.value {
				t.Errorf("another instance's parameter %s was touched (exists=%v)", other, ok)
			}

			reqs := imds.requests()
			if !tc.wantIMDS && len(reqs) > 0 {
				t.Errorf("metadata service used: %v", reqs)
			}
			if tc.wantIMDS {
				if len(reqs) == 0 || reqs[0] != (imdsRequest{Method: http.MethodPut, Path: "/latest/api/token"}) {
					t.Errorf("metadata requests do not start with the token PUT: %v", reqs)
				}
				for _, r := range reqs {
					if r.Method == http.MethodGet && !r.Token {
						t.Errorf("metadata GET %s without the IMDSv2 token", r.Path)
					}
				}
			}

			secrets := jit.secrets
			if contains(gotCalls, callRunSh) {
				argv := lines(readFile(t, filepath.Join(rec, "argv")))
				if len(argv) != 2 || argv[0] != "--jitconfig" {
					t.Fatalf("run.sh arguments %q, want --jitconfig <config>", argv)
				}
				secrets = append(secrets, argv[1])
				if diff := cmp.Diff(jit.withoutUpdate(t), decodeJIT(t, argv[1])); diff != "" {
					t.Errorf("config given to run.sh, decoded (-want +got):\n%s", diff)
				}
				gotEnv := map[string]string{}
				for _, l := range lines(readFile(t, filepath.Join(rec, "env"))) {
					k, v, _ := strings.Cut(l, "=")
					if k != "PWD" && k != "SHLVL" && k != "_" {
						gotEnv[k] = v
					}
				}
				wantEnv := map[string]string{
					"HOME": "/home/ubuntu", "USER": "ubuntu", "LOGNAME": "ubuntu",
					"SHELL": "/bin/bash", "LANG": "C.UTF-8", "PATH": runnerPath,
				}
				if diff := cmp.Diff(wantEnv, gotEnv); diff != "" {
					t.Errorf("runner environment (-want +got):\n%s", diff)
				}
			}

			outputs := map[string]string{}
			for _, f := range []string{"stdout", "stderr", "console", "journal", "calls"} {
				outputs[f] = readFile(t, filepath.Join(rec, f))
			}
			err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || p == filepath.Join(rec, "argv") {
					return err
				}
				b, err := os.ReadFile(p)
				outputs["file "+p] = string(b)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			for where, text := range outputs {
				for _, s := range secrets {
					if strings.Contains(text, s) {
						t.Errorf("%s contains a JIT config secret", where)
					}
				}
			}
		})
	}
}

// runBootstrap runs bootstrap.sh in its own process group, kills whatever it leaves behind, and
// returns its exit status.
func runBootstrap(t *testing.T, bash string, env []string, stdout, stderr string, args []string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	script, err := filepath.Abs("bootstrap.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bash, append([]string{script}, args...)...)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	out, err := os.Create(stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	errf, err := os.Create(stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd.Stdout, cmd.Stderr = out, errf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	// Give the runner's output reader a moment to log its last lines, then end whatever of the
	// group is left (a runner stub the bootstrap did not stop would be a failure seen elsewhere).
	for i := 0; i < 30 && syscall.Kill(-cmd.Process.Pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if ctx.Err() != nil {
		t.Fatalf("bootstrap did not finish within the test's bound")
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// sandboxTools makes a folder with only the real commands the bootstrap and the stubs need,
// so that PATH (stubs, then this folder) reaches nothing else: no real shutdown or iptables.
// aws gets a wrapper that restores the full PATH for the CLI alone (it may be a pyenv shim).
func sandboxTools(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var missing []string
	for _, name := range []string{"bash", "curl", "jq", "base64", "date", "sleep", "env", "grep", "test", "mkdir", "cat"} {
		p, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, name)
			continue
		}
		if err := os.Symlink(p, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	awsPath, err := exec.LookPath("aws")
	if err != nil {
		missing = append(missing, "aws (AWS CLI)")
	} else {
		writeFile(t, filepath.Join(dir, "aws"), fmt.Sprintf("#!/bin/sh\nPATH=%s\nexport PATH\nexec %s \"$@\"\n",
			shellQuote(os.Getenv("PATH")), shellQuote(awsPath)), 0o755)
	}
	if len(missing) > 0 {
		if world.Required() {
			t.Fatalf("tools the bootstrap test needs are missing: %s", strings.Join(missing, ", "))
		}
		t.Skipf("tools the bootstrap test needs are missing: %s", strings.Join(missing, ", "))
	}
	return dir
}

// writeStubs writes the recording stubs into dir/stubs and returns that folder.
func writeStubs(t *testing.T, dir, rec string) string {
	t.Helper()
	stubs := filepath.Join(dir, "stubs")
	if err := os.MkdirAll(stubs, 0o755); err != nil {
		t.Fatal(err)
	}
	calls := shellQuote(filepath.Join(rec, "calls"))
	record := "printf '%s\\n' \"${0##*/} $*\" >>" + calls + "\n"
	for name, body := range map[string]string{
		// runuser -u USER -- CMD...: records the user and command, runs CMD as the caller.
		"runuser": `[ "$1" = -u ] && [ "$3" = -- ] || { echo "runuser stub: want -u USER -- CMD" >&2; exit 2; }
printf 'runuser -u %s %s\n' "$2" "$4" >>` + calls + `
shift 3
exec "$@"
`,
		"id": `if [ "$1" = -u ] && [ "$2" = ubuntu ]; then echo 1000; exit 0; fi
echo "id stub: no such user" >&2
exit 1
`,
		"iptables":  record,
		"ip6tables": record,
		"shutdown":  record,
		"docker":    "exit 0\n",
		"logger": `[ "$1" = -t ] && [ "$2" = spotrunner ] && [ "$3" = -- ] || { echo "logger stub: want -t spotrunner -- MSG" >&2; exit 2; }
printf '%s\n' "$4" >>` + shellQuote(filepath.Join(rec, "journal")) + "\n",
	} {
		writeFile(t, filepath.Join(stubs, name), "#!/bin/bash\n"+body, 0o755)
	}
	for _, f := range []string{"calls", "journal", "console"} {
		writeFile(t, filepath.Join(rec, f), "", 0o644)
	}
	return stubs
}

// runnerStub is run.sh: it records how it was started (the runner gets env -i, so the paths are
// baked in), prints what the runner prints, then behaves as mode says.
func runnerStub(rec, runnerDir, mode string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/bash\nprintf '%%s\\n' \"$@\" >%s\nenv >%s\nprintf 'run.sh\\n' >>%s\n",
		shellQuote(filepath.Join(rec, "argv")), shellQuote(filepath.Join(rec, "env")), shellQuote(filepath.Join(rec, "calls")))
	b.WriteString("echo 'Connected to GitHub'\necho \"Current runner version: '2.331.0'\"\necho \"$(date -u '+%Y-%m-%d %H:%M:%SZ'): Listening for Jobs\"\n")
	switch mode {
	case "exit":
		b.WriteString("echo \"$(date -u '+%Y-%m-%d %H:%M:%SZ'): Running job: build\"\nsleep 0.5\necho \"$(date -u '+%Y-%m-%d %H:%M:%SZ'): Job build completed with result: Succeeded\"\nexit 0\n")
	case "idle":
		b.WriteString("exec sleep 60\n")
	case "busy":
		b.WriteString("echo \"$(date -u '+%Y-%m-%d %H:%M:%SZ'): Running job: build\"\nexec sleep 60\n")
	case "worker":
		fmt.Fprintf(&b, "mkdir -p %[1]s\n: >%[1]s/Worker_20260101-000000-utc.log\nexec sleep 60\n", shellQuote(filepath.Join(runnerDir, "_diag")))
	}
	return b.String()
}

// jitConfig is a JIT runner config shaped like GitHub's encoded_jit_config: base64 of a JSON
// object whose values are the base64 runner files (.runner with a BOM, as .NET writes it).
type jitConfig struct {
	value   string
	files   map[string]string // decoded files
	secrets []string          // strings that must never show up in output
}

func newJITConfig(t *testing.T, id string) jitConfig {
	t.Helper()
	clientID := "client-" + randomHex(t, 16)
	exponent := "private-" + randomHex(t, 32)
	files := map[string]string{
		".runner": "\ufeff" + fmt.Sprintf(`{"agentId":42,"agentName":"spotrunner-%s","poolId":1,"poolName":"Default",`+
			`"serverUrl":"https://pipelines.example/abc","gitHubUrl":"https://ghes.example/octo-org","workFolder":"_work","ephemeral":true,"DisableUpdate":"False"}`, id),
		".credentials":           fmt.Sprintf(`{"scheme":"OAuth","data":{"clientId":"%s","authorizationUrl":"https://ghes.example/token"}}`, clientID),
		".credentials_rsaparams": fmt.Sprintf(`{"d":"%s","exponent":"AQAB"}`, exponent),
	}
	enc := map[string]string{}
	for k, v := range files {
		enc[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	outer, err := json.Marshal(enc)
	if err != nil {
		t.Fatal(err)
	}
	value := base64.StdEncoding.EncodeToString(outer)
	return jitConfig{
		value:   value,
		files:   files,
		secrets: []string{value, clientID, exponent, enc[".credentials"], enc[".credentials_rsaparams"]},
	}
}

// withoutUpdate is what the runner must receive, decoded: the same files, .runner with
// DisableUpdate set and no other spelling of it left (GitHub sends "DisableUpdate":"False"; the
// runner reads keys case-insensitively, so two spellings would leave it to key order).
func (j jitConfig) withoutUpdate(t *testing.T) map[string]any {
	t.Helper()
	var runner map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(j.files[".runner"], "\ufeff")), &runner); err != nil {
		t.Fatal(err)
	}
	for k := range runner {
		if strings.EqualFold(k, "disableUpdate") {
			delete(runner, k)
		}
	}
	runner["DisableUpdate"] = true
	return map[string]any{".runner": runner, ".credentials": j.files[".credentials"], ".credentials_rsaparams": j.files[".credentials_rsaparams"]}
}

func decodeJIT(t *testing.T, value string) map[string]any {
	t.Helper()
	outer, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		t.Fatalf("config is not base64: %v", err)
	}
	var enc map[string]string
	if err := json.Unmarshal(outer, &enc); err != nil {
		t.Fatalf("config is not a JSON object: %v", err)
	}
	got := map[string]any{}
	for k, v := range enc {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatalf("%s is not base64: %v", k, err)
		}
		got[k] = string(b)
	}
	var runner map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(got[".runner"].(string), "\ufeff")), &runner); err != nil {
		t.Fatalf(".runner is not JSON: %v", err)
	}
	got[".runner"] = runner
	return got
}

func instanceARN(param string) string {
	return "arn:aws:ec2:us-east-1:123456789012:instance/" + filepath.Base(param)
}

// putJIT writes a JIT config parameter the way the provisioner does.
func putJIT(t *testing.T, client *ssm.Client, name, value, arn string) {
	t.Helper()
	_, err := client.PutParameter(context.Background(), &ssm.PutParameterInput{
		Name:      aws.String(name),
		Value:     aws.String(value),
		Type:      ssmtypes.ParameterTypeSecureString,
		Overwrite: aws.Bool(false),
		Tags: []ssmtypes.Tag{
			{Key: aws.String("spotrunner:managed"), Value: aws.String("true")},
			{Key: aws.String("spotrunner:instance-arn"), Value: aws.String(arn)},
		},
	})
	var exists *ssmtypes.ParameterAlreadyExists
	if errors.As(err, &exists) {
		// moto drops idle keep-alive connections now and then, and the SDK's retry of a put that
		// went through finds it there: that is ours if it holds our value.
		if got, ok := getJIT(t, client, name); ok && got == value {
			return
		}
	}
	if err != nil {
		t.Errorf("put %s: %v", name, err)
	}
}

// getJIT reads a parameter; ok is false when it does not exist.
func getJIT(t *testing.T, client *ssm.Client, name string) (string, bool) {
	t.Helper()
	out, err := client.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	var notFound *ssmtypes.ParameterNotFound
	if errors.As(err, &notFound) {
		return "", false
	}
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return aws.ToString(out.Parameter.Value), true
}

// imdsRequest is one request the fake metadata service saw.
type imdsRequest struct {
	Method, Path string
	Token        bool // carried the session token
}

// fakeIMDS is IMDSv2 with IMDSv1 off: a token from PUT /latest/api/token, and GETs answered only
// with it.
type fakeIMDS struct {
	token string
	meta  map[string]string

	mu   sync.Mutex
	reqs []imdsRequest
}

func newFakeIMDS(instanceID string, tags map[string]string) *fakeIMDS {
	f := &fakeIMDS{token: "token-" + instanceID, meta: map[string]string{
		"/latest/meta-data/instance-id":      instanceID,
		"/latest/meta-data/placement/region": "us-east-1",
	}}
	if tags != nil {
		var keys []string
		for k, v := range tags {
			keys = append(keys, k)
			f.meta["/latest/meta-data/tags/instance/"+k] = v
		}
		sort.Strings(keys)
		f.meta["/latest/meta-data/tags/instance"] = strings.Join(keys, "\n")
	}
	return f
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok := r.Header.Get("X-aws-ec2-metadata-token") == f.token
	f.mu.Lock()
	f.reqs = append(f.reqs, imdsRequest{Method: r.Method, Path: r.URL.Path, Token: tok})
	f.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			http.Error(w, "missing TTL", http.StatusBadRequest)
			return
		}
		io.WriteString(w, f.token)
	case r.Method == http.MethodGet:
		if !tok {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		body, ok := f.meta[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, body)
	default:
		http.Error(w, "", http.StatusMethodNotAllowed)
	}
}

func (f *fakeIMDS) requests() []imdsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]imdsRequest(nil), f.reqs...)
}

// ssmCall is one SSM API call: the operation and the parameter named.
type ssmCall struct{ Op, Name string }

// ssmRecorder forwards to moto and records each SSM call (X-Amz-Target and the Name field).
type ssmRecorder struct {
	proxy *httputil.ReverseProxy
	mu    sync.Mutex
	calls []ssmCall
}

func newSSMRecorder(t *testing.T, endpoint string) *ssmRecorder {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatalf("moto endpoint %q: %v", endpoint, err)
	}
	return &ssmRecorder{proxy: httputil.NewSingleHostReverseProxy(u)}
}

func (s *ssmRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var in struct{ Name string }
	_ = json.Unmarshal(body, &in)
	s.mu.Lock()
	s.calls = append(s.calls, ssmCall{Op: strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSSM."), Name: in.Name})
	s.mu.Unlock()
	s.proxy.ServeHTTP(w, r)
}

// distinct returns the calls with consecutive repeats (the bootstrap's polling) folded.
func (s *ssmRecorder) distinct() []ssmCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ssmCall
	for _, c := range s.calls {
		if len(out) == 0 || out[len(out)-1] != c {
			out = append(out, c)
		}
	}
	return out
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)[:n]
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
