package instance

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Where the user data installs the bootstrap and its unit (sam/image.yaml's components write the
// same paths).
const (
	bootstrapPath = "/usr/local/sbin/spotrunner-bootstrap"
	unitPath      = "/etc/systemd/system/spotrunner.service"
)

// TestUserDataEncoding decodes UserData() and checks what EC2 and cloud-init need of it: base64
// of a gzip stream of at most 16,384 bytes (EC2's limit on raw user data), a header with no file
// name and modification time 0 so that the output is the same at every call, and a script that
// starts with #! (cloud-init's mark of a user script). It logs the sizes and the headroom.
func TestUserDataEncoding(t *testing.T) {
	t.Parallel()
	encoded, err := UserData()
	if err != nil {
		t.Fatalf("UserData: %v", err)
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		t.Fatalf("UserData is not base64: %v", err)
	}
	if len(raw) > maxUserData {
		t.Errorf("user data is %d bytes gzipped, over EC2's limit of %d bytes by %d: shrink instance/bootstrap.sh or instance/userdata.sh",
			len(raw), maxUserData, len(raw)-maxUserData)
	}
	if len(raw) < 10 || raw[0] != 0x1f || raw[1] != 0x8b || raw[2] != 8 {
		t.Fatalf("user data does not start with a gzip deflate header: % x", raw[:min(len(raw), 10)])
	}
	if flags := raw[3]; flags != 0 {
		t.Errorf("gzip header flags %#x, want 0 (no name, comment or extra field)", flags)
	}
	if mtime := binary.LittleEndian.Uint32(raw[4:8]); mtime != 0 {
		t.Errorf("gzip header modification time %d, want 0", mtime)
	}
	script := gunzip(t, raw)
	if !strings.HasPrefix(script, "#!/usr/bin/env bash\n") {
		t.Errorf("script starts with %q, want a bash shebang", script[:min(len(script), 40)])
	}
	again, err := UserData()
	if err != nil {
		t.Fatalf("UserData, second call: %v", err)
	}
	if again != encoded {
		t.Error("UserData gave two different strings for the same files")
	}
	t.Logf("user data: script %d bytes, gzip %d bytes (limit %d, headroom %d), base64 %d characters",
		len(script), len(raw), maxUserData, maxUserData-len(raw), len(encoded))
}

// TestUserDataRefusals gives the encoder files it must refuse: a bootstrap too large for EC2 once
// gzipped (random hex, which gzip cannot shrink below half), files without a final newline (a
// heredoc would add one), and files with a line equal to their heredoc's delimiter (it would end
// the heredoc early). Each must fail with an error that says why.
func TestUserDataRefusals(t *testing.T) {
	t.Parallel()
	noise := make([]byte, 2*maxUserData)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, bootstrap, unit string
		wantErr               string
	}{
		{name: "too large", bootstrap: "#!/usr/bin/env bash\n: " + hex.EncodeToString(noise) + "\n", unit: serviceUnit, wantErr: "over EC2's limit of 16384 bytes"},
		{name: "bootstrap without final newline", bootstrap: strings.TrimSuffix(bootstrapScript, "\n"), unit: serviceUnit, wantErr: "bootstrap.sh does not end with a newline"},
		{name: "unit without final newline", bootstrap: bootstrapScript, unit: strings.TrimSuffix(serviceUnit, "\n"), wantErr: "spotrunner.service does not end with a newline"},
		{name: "bootstrap holds its delimiter", bootstrap: bootstrapScript + "SPOTRUNNER_BOOTSTRAP_EOF\n", unit: serviceUnit, wantErr: "bootstrap.sh has a line SPOTRUNNER_BOOTSTRAP_EOF"},
		{name: "unit holds its delimiter", bootstrap: bootstrapScript, unit: "SPOTRUNNER_UNIT_EOF\n" + serviceUnit, wantErr: "spotrunner.service has a line SPOTRUNNER_UNIT_EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := encodeUserData(tc.bootstrap, tc.unit)
			if err == nil {
				t.Fatalf("encodeUserData succeeded (%d characters), want an error with %q", len(got), tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q, want one with %q", err, tc.wantErr)
			}
		})
	}
}

// TestUserDataScript runs the script decoded from UserData() with bash, as cloud-init would at
// first boot, against a temporary root (SPOTRUNNER_ROOT) with these fixtures per case:
//   - the root's bootstrap and unit before the run: none (a bring-your-own AMI), those of a first
//     run of the script itself, an older bootstrap, or this bootstrap with the wrong mode; every
//     file present is back-dated first;
//   - a systemctl stub first on PATH that records its arguments, says whether the unit is already
//     running (is-active) and fails one verb when the case asks; PATH holds nothing else but the
//     few real tools the script needs, so nothing can reach this machine's systemd.
//
// What must happen: the exit status; both files then byte for byte instance/bootstrap.sh (0755)
// and instance/spotrunner.service (0644) with no temporary file beside them; each file installed,
// replaced (a new file renamed over the old) or kept (the same file, its mtime untouched) as the
// case says; the systemctl calls in order (daemon-reload, enable, is-active, start --no-block);
// exactly the case's log lines on stdout, each with a timestamp, and nothing on stderr.
func TestUserDataScript(t *testing.T) {
	t.Parallel()
	encoded, err := UserData()
	if err != nil {
		t.Fatalf("UserData: %v", err)
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "user-data")
	writeFile(t, script, gunzip(t, raw), 0o644)
	tools := userDataTools(t)
	want := map[string]string{bootstrapPath: readFile(t, "bootstrap.sh"), unitPath: readFile(t, "spotrunner.service")}
	wantMode := map[string]os.FileMode{bootstrapPath: 0o755, unitPath: 0o644}
	older := strings.Replace(want[bootstrapPath], "readonly default_idle_minutes=10\n", "readonly default_idle_minutes=5\n", 1)
	if older == want[bootstrapPath] {
		t.Fatal("fixture: bootstrap.sh no longer sets default_idle_minutes=10; pick another line to change")
	}

	const (
		bootstrapInstalled = bootstrapPath + ": not in the AMI; installed (mode 0755)"
		bootstrapKept      = bootstrapPath + ": the AMI has this version (mode 0755); left as it is"
		bootstrapReplaced  = bootstrapPath + ": the AMI's copy differs from this deployment's (content, mode or owner); replaced (mode 0755)"
		unitInstalled      = unitPath + ": not in the AMI; installed (mode 0644)"
		unitKept           = unitPath + ": the AMI has this version (mode 0644); left as it is"
		enabled            = "systemd reloaded; spotrunner.service enabled"
		started            = "spotrunner.service start queued (systemctl start --no-block)"
	)
	allCalls := []string{"daemon-reload", "enable spotrunner.service", "is-active --quiet spotrunner.service", "start --no-block spotrunner.service"}

	type file struct {
		content string
		mode    os.FileMode
	}
	tests := []struct {
		name   string
		before map[string]file // files in the root before the run
		rerun  bool            // before: what a first run of the script left
		active bool            // systemctl is-active: the AMI's unit is already running
		fail   string          // the systemctl verb that fails

		wantExit  int
		wantFiles map[string]string // path: installed, replaced or kept
		wantCalls []string
		wantLog   []string
	}{
		{
			name:      "AMI without the bootstrap",
			wantFiles: map[string]string{bootstrapPath: "installed", unitPath: "installed"},
			wantCalls: allCalls,
			wantLog:   []string{bootstrapInstalled, unitInstalled, enabled, started},
		},
		{
			name:      "second run on the same root",
			rerun:     true,
			wantFiles: map[string]string{bootstrapPath: "kept", unitPath: "kept"},
			wantCalls: allCalls,
			wantLog:   []string{bootstrapKept, unitKept, enabled, started},
		},
		{
			name:      "AMI with an older bootstrap",
			before:    map[string]file{bootstrapPath: {older, 0o755}, unitPath: {want[unitPath], 0o644}},
			wantFiles: map[string]string{bootstrapPath: "replaced", unitPath: "kept"},
			wantCalls: allCalls,
			wantLog:   []string{bootstrapReplaced, unitKept, enabled, started},
		},
		{
			name:      "AMI running its older bootstrap already",
			before:    map[string]file{bootstrapPath: {older, 0o755}, unitPath: {want[unitPath], 0o644}},
			active:    true,
			wantFiles: map[string]string{bootstrapPath: "replaced", unitPath: "kept"},
			wantCalls: allCalls,
			wantLog: []string{bootstrapReplaced, unitKept, enabled,
				"warning: spotrunner.service was already running the AMI's own bootstrap, which keeps running on this instance; rebuild the AMI to run this deployment's",
				started},
		},
		{
			name:      "AMI running this bootstrap already",
			rerun:     true,
			active:    true,
			wantFiles: map[string]string{bootstrapPath: "kept", unitPath: "kept"},
			wantCalls: allCalls,
			wantLog:   []string{bootstrapKept, unitKept, enabled, "spotrunner.service is already running (the AMI enables it)", started},
		},
		{
			name:      "AMI with this bootstrap not executable",
			before:    map[string]file{bootstrapPath: {want[bootstrapPath], 0o644}},
			wantFiles: map[string]string{bootstrapPath: "replaced", unitPath: "installed"},
			wantCalls: allCalls,
			wantLog:   []string{bootstrapReplaced, unitInstalled, enabled, started},
		},
		{
			name:      "enable fails",
			fail:      "enable",
			wantExit:  1,
			wantFiles: map[string]string{bootstrapPath: "installed", unitPath: "installed"},
			wantCalls: allCalls[:2],
			wantLog:   []string{bootstrapInstalled, unitInstalled, "FAILED (exit status 1); spotrunner.service was not started"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			rec := filepath.Join(dir, "rec")
			stubs := filepath.Join(dir, "stubs")
			for _, d := range []string{root, rec, stubs} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			calls := filepath.Join(rec, "calls")
			writeFile(t, filepath.Join(stubs, "systemctl"), `#!/bin/bash
printf '%s\n' "$*" >>`+shellQuote(calls)+`
if [ "$1" = "${STUB_FAIL:-}" ]; then echo "systemctl stub: $1 fails" >&2; exit 1; fi
if [ "$1" = is-active ]; then [ "${STUB_ACTIVE:-}" = 1 ]; exit; fi
exit 0
`, 0o755)
			bash := filepath.Join(tools, "bash")
			env := []string{"PATH=" + stubs + ":" + tools, "LANG=C.UTF-8", "SPOTRUNNER_ROOT=" + root}

			for p, f := range tc.before {
				if err := os.MkdirAll(filepath.Dir(root+p), 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, root+p, f.content, f.mode)
				if err := os.Chmod(root+p, f.mode); err != nil { // WriteFile's mode passes the umask
					t.Fatal(err)
				}
			}
			if tc.rerun {
				if code, _, stderr := runUserData(t, bash, script, env); code != 0 {
					t.Fatalf("first run: exit status %d; stderr:\n%s", code, stderr)
				}
				writeFile(t, calls, "", 0o644)
			}
			backdated := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
			before := map[string]os.FileInfo{}
			for _, p := range []string{bootstrapPath, unitPath} {
				if err := os.Chtimes(root+p, backdated, backdated); err != nil {
					continue // absent
				}
				fi, err := os.Stat(root + p)
				if err != nil {
					t.Fatal(err)
				}
				before[p] = fi
			}

			env = append(env, "STUB_FAIL="+tc.fail)
			if tc.active {
				env = append(env, "STUB_ACTIVE=1")
			}
			code, stdout, stderr := runUserData(t, bash, script, env)
			if code != tc.wantExit {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tc.wantExit, stderr)
			}
			if tc.wantExit == 0 && stderr != "" {
				t.Errorf("stderr not empty:\n%s", stderr)
			}

			for p, how := range tc.wantFiles {
				fi, err := os.Lstat(root + p)
				if err != nil {
					t.Errorf("%s: %v", p, err)
					continue
				}
				if got := readFile(t, root+p); got != want[p] {
					t.Errorf("%s is not byte for byte instance/%s (%d bytes, want %d)", p, filepath.Base(p), len(got), len(want[p]))
				}
				if !fi.Mode().IsRegular() || fi.Mode().Perm() != wantMode[p] {
					t.Errorf("%s mode %v, want -%v", p, fi.Mode(), wantMode[p])
				}
				old, existed := before[p]
				var got string
				switch {
				case !existed:
					got = "installed"
				case os.SameFile(old, fi) && fi.ModTime().Equal(backdated):
					got = "kept"
				case !os.SameFile(old, fi):
					got = "replaced"
				default:
					got = "rewritten in place"
				}
				if got != how {
					t.Errorf("%s was %s, want %s", p, got, how)
				}
				entries, err := os.ReadDir(filepath.Dir(root + p))
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				if diff := cmp.Diff([]string{filepath.Base(p)}, names); diff != "" {
					t.Errorf("files in %s (-want +got):\n%s", filepath.Dir(p), diff)
				}
			}

			if diff := cmp.Diff(tc.wantCalls, lines(readFile(t, calls))); diff != "" {
				t.Errorf("systemctl calls (-want +got):\n%s", diff)
			}

			stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ spotrunner-userdata: `)
			var logged []string
			for _, l := range lines(stdout) {
				if !stamp.MatchString(l) {
					t.Errorf("log line without a timestamp and tag: %q", l)
				}
				logged = append(logged, stamp.ReplaceAllString(l, ""))
			}
			if diff := cmp.Diff(tc.wantLog, logged); diff != "" {
				t.Errorf("log (-want +got):\n%s", diff)
			}
		})
	}
}

// runUserData runs the user data script with bash and env, and returns its exit status, stdout
// and stderr.
func runUserData(t *testing.T, bash, script string, env []string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bash, script)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode(), stdout.String(), stderr.String()
	}
	if err != nil {
		t.Fatalf("run user data: %v", err)
	}
	return 0, stdout.String(), stderr.String()
}

// userDataTools returns a folder of links to the real tools the user data script runs besides
// systemctl, and fails the test when one is missing.
func userDataTools(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"bash", "cat", "chmod", "cmp", "date", "mkdir", "mktemp", "mv", "rm", "stat"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("the user data test needs %s: %v", name, err)
		}
		if err := os.Symlink(p, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// gunzip returns the text of a gzip stream.
func gunzip(t *testing.T, raw []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("user data is not gzip: %v", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("user data gzip stream: %v", err)
	}
	return string(b)
}
