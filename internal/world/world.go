// Package world connects tests to the local world: moto_server for the AWS APIs (started by
// scripts/with-world.sh, which exports AWS_ENDPOINT_URL and SPOTRUNNER_WORLD=1) and the npm
// fixtures in testdata/octokit (installed by scripts/deps.sh).
//
// A test that needs the world calls Endpoint or Fixture first. Under `make test` (SPOTRUNNER_WORLD=1)
// a missing piece fails the test loudly; under a plain `go test ./...` it skips with the reason, so
// that plain run stays fast and needs nothing started.
//
// Where moto is laxer than AWS in a way the project relies on, the package's clients put AWS's
// behaviour in front of it (EC2's is package ec2world):
//
//   - DynamoDB (NewDynamoDB) makes conditional writes and transactions atomic (see its doc);
//   - SSM (NewSSM) refuses parameter values longer than their tier holds (Standard 4096
//     characters, Advanced 8192) with AWS's ValidationException, and stores
//     Intelligent-Tiering values in the tier AWS would choose.
package world

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Required reports whether the local world must be present (set by scripts/with-world.sh).
func Required() bool { return os.Getenv("SPOTRUNNER_WORLD") == "1" }

// missing fails the test when the world is required and skips it otherwise.
func missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if Required() {
		tb.Fatalf("local world: "+format, args...)
	}
	tb.Skipf("local world not running (run `make test`): "+format, args...)
}

// Endpoint returns moto's loopback URL, or ends the test as described in the package comment.
func Endpoint(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("AWS_ENDPOINT_URL")
	if u == "" {
		missing(tb, "AWS_ENDPOINT_URL is not set")
	}
	return u
}

// Root returns the module root, found from this file's location.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Fixture returns the path of a file in the npm fixtures, e.g.
// Fixture(t, "@octokit/openapi/generated/ghes-3.19.json"), or ends the test as described above.
func Fixture(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(Root(), "testdata", "octokit", "node_modules", filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		missing(tb, "fixture %s: %v (run scripts/deps.sh)", rel, err)
	}
	return p
}
