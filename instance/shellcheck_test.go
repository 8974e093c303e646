package instance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spotrunner/spotrunner/internal/world"
)

// TestShellcheck runs shellcheck (Debian package shellcheck, installed by scripts/deps.sh) on
// every script this package owns: instance/*.sh (userdata.sh as it is and as UserData renders it)
// and each ExecuteBash command of sam/image.yaml's component documents (written to a temporary
// file with a bash shebang). Each must be clean.
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

	scripts, err := filepath.Glob("*.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rendered, err := renderUserData(bootstrapScript, serviceUnit)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "userdata-rendered.sh")
	if err := os.WriteFile(p, []byte(rendered), 0o644); err != nil {
		t.Fatal(err)
	}
	scripts = append(scripts, p)
	var names []string
	embedded := map[string]string{}
	for _, c := range components(t, loadTemplate(t, imageTemplatePath())) {
		for name, script := range c.scripts() {
			embedded[name] = script
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for i, name := range names {
		p := filepath.Join(dir, fmt.Sprintf("%02d-%s.sh", i, strings.ReplaceAll(name, "/", "-")))
		if err := os.WriteFile(p, []byte("#!/usr/bin/env bash\n# "+name+"\n"+embedded[name]), 0o644); err != nil {
			t.Fatal(err)
		}
		scripts = append(scripts, p)
	}

	for _, s := range scripts {
		t.Run(filepath.Base(s), func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command(shellcheck, "--shell=bash", "--severity=style", s).CombinedOutput()
			if err != nil {
				t.Errorf("shellcheck %s: %v\n%s", s, err, out)
			}
		})
	}
}
