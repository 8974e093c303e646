package instancesim

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/spotrunner/spotrunner/internal/world"
)

// TestShellcheck runs shellcheck (installed by scripts/deps.sh) on every script the Sim writes:
// the stand-in run.sh, with and without a CA file, and each stub. Each must be clean.
// Without shellcheck the test skips, or fails under the local world (SPOTRUNNER_WORLD=1).
func TestShellcheck(t *testing.T) {
	t.Parallel()
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		if world.Required() {
			t.Fatalf("shellcheck not found: %v (run scripts/deps.sh)", err)
		}
		t.Skipf("shellcheck not found (run scripts/deps.sh, or make test): %v", err)
	}
	dir := t.TempDir()
	scripts := map[string]string{
		"run.sh":         runScript("/sim/tools", "https://127.0.0.1:8443", "/sim/ca.pem", "/sim/i-1/actions-runner/_sim"),
		"run-no-tls.sh":  runScript("/sim/tools", "http://127.0.0.1:8080/", "", "/sim/i-1/actions-runner/_sim"),
		"quoted-path.sh": runScript("/sim/it's here", "http://127.0.0.1:8080/", "/sim/it's here/ca.pem", "/sim/it's here/_sim"),
	}
	for name, script := range stubs("/sim/it's here/i-1") {
		scripts["stub-"+name] = script
	}
	for name, script := range scripts {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(shellcheck, "--shell=bash", "--severity=style", p).CombinedOutput()
			if err != nil {
				t.Errorf("shellcheck %s: %v\n%s\nscript:\n%s", name, err, out, script)
			}
		})
	}
}
