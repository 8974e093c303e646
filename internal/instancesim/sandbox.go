package instancesim

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// tools are the real commands an instance's PATH reaches, after the stubs: what bootstrap.sh calls
// (curl, aws, jq, base64, grep, date, sleep; test through `runuser -- test -w`, env through
// `runuser -- env -i`) and what the stubs and the stand-in runner call. Nothing else is reachable,
// so no real shutdown, iptables or docker can touch this machine.
var tools = []string{"bash", "curl", "jq", "base64", "grep", "date", "sleep", "env", "test", "cat", "mkdir", "rm"}

// writeTools makes dir with a link to each real tool and an aws wrapper, and returns dir.
// The wrapper restores this process's PATH for the AWS CLI alone: it may be a pyenv shim or a
// venv script that needs its interpreter from PATH.
func writeTools(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("tools: %w", err)
	}
	var missing []string
	for _, name := range tools {
		p, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, name)
			continue
		}
		link := filepath.Join(dir, name)
		_ = os.Remove(link) // a WorkDir used before
		if err := os.Symlink(p, link); err != nil {
			return "", fmt.Errorf("tools: %w", err)
		}
	}
	awsCLI, err := exec.LookPath("aws")
	if err != nil {
		missing = append(missing, "aws (the AWS CLI)")
	} else if filepath.Base(filepath.Dir(awsCLI)) == "shims" {
		// A pyenv shim finds the real script on every call (a tenth of the CLI's start); ask it once.
		if out, err := exec.Command("pyenv", "which", "aws").Output(); err == nil && filepath.IsAbs(strings.TrimSpace(string(out))) {
			awsCLI = strings.TrimSpace(string(out))
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("tools: not found on PATH: %s", strings.Join(missing, ", "))
	}
	wrapper := "#!/bin/sh\n# The AWS CLI with the simulator's own PATH (it may need its interpreter from there).\n" +
		"PATH=" + shellQuote(os.Getenv("PATH")) + "\nexport PATH\nexec " + shellQuote(awsCLI) + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "aws"), []byte(wrapper), 0o755); err != nil {
		return "", fmt.Errorf("tools: %w", err)
	}
	return dir, nil
}

// Files in an instance's sandbox.
const (
	stubsDir    = "stubs"          // first on the bootstrap's PATH
	runnerDir   = "actions-runner" // SPOTRUNNER_RUNNER_DIR, with the stand-in run.sh
	homeDir     = "home"           // HOME: keeps the AWS CLI from any ~/.aws of this machine
	consoleFile = "console"        // SPOTRUNNER_CONSOLE: the EC2 system log
	journalFile = "journal"        // what the bootstrap sent to logger
	callsFile   = "calls"          // the stubs' calls, in order
	outputFile  = "bootstrap.log"  // the bootstrap's stdout and stderr (the service's journal)
)

// stubs returns the stub scripts by name. Each records its call in calls (the journal for logger)
// and acts as the real command would on a runner instance, without touching this machine.
func stubs(dir string) map[string]string {
	calls := shellQuote(filepath.Join(dir, callsFile))
	record := `printf '%s\n' "${0##*/} $*" >>` + calls + "\n"
	body := map[string]string{
		// runuser -u USER -- CMD...: runs CMD as the caller (this sandbox has no user ubuntu).
		"runuser": `if [ "$1" != -u ] || [ "$3" != -- ]; then
  echo "runuser stub: want -u USER -- CMD" >&2
  exit 2
fi
printf 'runuser -u %s %s\n' "$2" "$4" >>` + calls + `
shift 3
exec "$@"
`,
		// id -u ubuntu: the runner user exists.
		"id": `if [ "$1" = -u ] && [ "$2" = ubuntu ]; then
  echo 1000
  exit 0
fi
echo "id stub: no such user: $*" >&2
exit 1
`,
		"iptables":  record,
		"ip6tables": record,
		"docker":    record,
		"logger": `if [ "$1" != -t ] || [ "$3" != -- ]; then
  echo "logger stub: want -t TAG -- MESSAGE" >&2
  exit 2
fi
printf '%s\n' "$4" >>` + shellQuote(filepath.Join(dir, journalFile)) + "\n",
		// shutdown -h now: recorded; the simulator powers the machine off when the bootstrap ends.
		"shutdown": record,
	}
	out := map[string]string{}
	for name, b := range body {
		out[name] = "#!/usr/bin/env bash\n# " + name + " stub of internal/instancesim\n" + b
	}
	return out
}

// writeSandbox lays out an instance's sandbox in dir: stubs, runner folder with run.sh, home, and
// the empty record files.
func writeSandbox(dir, runSh string) error {
	for _, d := range []string{stubsDir, runnerDir, homeDir} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	var errs []error
	for name, script := range stubs(dir) {
		errs = append(errs, os.WriteFile(filepath.Join(dir, stubsDir, name), []byte(script), 0o755))
	}
	errs = append(errs, os.WriteFile(filepath.Join(dir, runnerDir, "run.sh"), []byte(runSh), 0o755))
	for _, f := range []string{consoleFile, journalFile, callsFile} {
		errs = append(errs, os.WriteFile(filepath.Join(dir, f), nil, 0o644))
	}
	return errors.Join(errs...)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
