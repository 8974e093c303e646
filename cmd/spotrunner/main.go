// Command spotrunner is the operator's CLI for a Spot Runner deployment: the status document,
// recent jobs and one job's timeline, the dead-letter queue and its redrive, and a static check
// of workflow labels. It finds the deployment's resources from its stack's outputs (--stack) or
// from a flag each, and AWS credentials and region the way the AWS CLI does.
//
// Exit codes: 0 success, 1 failure (or, for `labels check`, a label that would be rejected),
// 2 usage error.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
