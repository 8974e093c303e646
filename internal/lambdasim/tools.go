package lambdasim

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// The Lambda Runtime Interface Emulator, as the Go module proxy serves it. Its repository's
// tags (v1.x) are not what the proxy serves; this pseudo-version is.
const (
	RIEModule  = "github.com/aws/aws-lambda-runtime-interface-emulator"
	RIEPackage = RIEModule + "/cmd/aws-lambda-rie"
	RIEVersion = "v0.0.0-20261030222936-bef5c4ba774d"
)

// RIEPath is where InstallRIE puts aws-lambda-rie: .cache/bin under the module root.
func RIEPath(root string) string { return filepath.Join(root, ".cache", "bin", "aws-lambda-rie") }

// LookRIE returns RIEPath(root) when the binary there is RIEVersion (read from its Go build
// information), and otherwise an error that says how to install it.
func LookRIE(root string) (string, error) {
	p := RIEPath(root)
	info, err := buildinfo.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("aws-lambda-rie: %w (install it with scripts/deps.sh: GOBIN=%s go install %s@%s)", err, filepath.Dir(p), RIEPackage, RIEVersion)
	}
	if info.Main.Path != RIEModule || info.Main.Version != RIEVersion {
		return "", fmt.Errorf("aws-lambda-rie at %s is %s@%s, want %s (run scripts/deps.sh)", p, info.Main.Path, info.Main.Version, RIEVersion)
	}
	return p, nil
}

// InstallRIE installs RIEVersion into RIEPath(root) with `go install`, unless it is there
// already, and returns its path.
func InstallRIE(ctx context.Context, root string) (string, error) {
	if p, err := LookRIE(root); err == nil {
		return p, nil
	}
	cmd := exec.CommandContext(ctx, "go", "install", RIEPackage+"@"+RIEVersion)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(RIEPath(root)), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("install aws-lambda-rie: %w\n%s", err, out)
	}
	return LookRIE(root)
}

// Binaries maps a service (its folder under services/, e.g. "provisioner") to its bootstrap.
type Binaries map[string]string

// Build builds every service (each services/<name> with a main.go) for this machine's OS and
// architecture, with -tags lambda.norpc as for Lambda (the template builds arm64 for AWS; the
// local world runs them here), into outDir/<name>. One `go build` does them all; it relinks only
// what changed.
func Build(ctx context.Context, root, outDir string) (Binaries, error) {
	mains, err := filepath.Glob(filepath.Join(root, "services", "*", "main.go"))
	if err != nil || len(mains) == 0 {
		return nil, fmt.Errorf("build services: no services/*/main.go under %s", root)
	}
	var pkgs []string
	for _, m := range mains {
		pkgs = append(pkgs, "./services/"+filepath.Base(filepath.Dir(m)))
	}
	return goBuild(ctx, root, outDir, pkgs...)
}

// goBuild builds the main packages pkgs (./-relative to root) into outDir, each named after its
// folder, and returns folder name → binary path.
func goBuild(ctx context.Context, root, outDir string, pkgs ...string) (Binaries, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	abs, err := filepath.Abs(outDir)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	args := append([]string{"build", "-tags", "lambda.norpc", "-o", abs + string(filepath.Separator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build %s: %w\n%s", strings.Join(pkgs, " "), err, out.Bytes())
	}
	bins := Binaries{}
	for _, p := range pkgs {
		name := filepath.Base(p)
		path := filepath.Join(abs, name)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("build %s: %w", p, errors.Join(err, errors.New("go build wrote no binary")))
		}
		bins[name] = path
	}
	return bins, nil
}
