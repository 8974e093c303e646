// Package logging builds the services' zerolog logger and carries our ids in the context.
//
// Every service logs JSON lines to stdout (CloudWatch reads them), at the level LOG_LEVEL names,
// with the Lambda request id and, as the work reveals them, the delivery id, job id and instance
// id. Handlers log once, at the boundary, from the logger in their context (From).
//
// No secret ever reaches a log line: every line passes through a redacting writer that removes
// the values registered with Redact (the webhook secret, the private key, installation tokens,
// JIT configs, as the packages that load or mint them register them) and anything shaped like a
// private key, a GitHub token or a JWT / base64 JSON blob, registered or not.
package logging

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/rs/zerolog"
)

// New returns a JSON logger writing redacted lines to w at level ("debug", "info", "warn",
// "error"; empty means info).
func New(w io.Writer, level string) (zerolog.Logger, error) {
	lvl := zerolog.InfoLevel
	if level != "" {
		var err error
		if lvl, err = zerolog.ParseLevel(strings.ToLower(level)); err != nil || lvl == zerolog.NoLevel {
			return zerolog.Nop(), fmt.Errorf("parse log level %q: want debug, info, warn or error", level)
		}
	}
	return zerolog.New(&redactor{w: w}).Level(lvl).With().Timestamp().Logger(), nil
}

// From returns the logger carried by ctx (a disabled one when there is none).
func From(ctx context.Context) *zerolog.Logger { return zerolog.Ctx(ctx) }

// With returns ctx whose logger adds key=value to every line.
func With(ctx context.Context, key, value string) context.Context {
	l := zerolog.Ctx(ctx).With().Str(key, value).Logger()
	return l.WithContext(ctx)
}

// Attach puts l in ctx together with the Lambda request id, if ctx carries one.
func Attach(ctx context.Context, l zerolog.Logger) context.Context {
	ctx = l.WithContext(ctx)
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		ctx = With(ctx, "requestId", lc.AwsRequestID)
	}
	return ctx
}

// WithDelivery adds the GitHub webhook delivery id (X-GitHub-Delivery).
func WithDelivery(ctx context.Context, id string) context.Context { return With(ctx, "deliveryId", id) }

// WithJob adds the GitHub host and workflow job id.
func WithJob(ctx context.Context, host string, jobID int64) context.Context {
	return With(With(ctx, "host", host), "jobId", strconv.FormatInt(jobID, 10))
}

// WithInstance adds the EC2 instance id.
func WithInstance(ctx context.Context, id string) context.Context { return With(ctx, "instanceId", id) }
