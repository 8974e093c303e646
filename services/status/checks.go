package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v4"

	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/secrets"
)

// AppDescriber makes the authenticated call as the App (githubapp.App).
type AppDescriber interface {
	Describe(ctx context.Context) (githubapp.AppInfo, error)
}

// KeySource gives the App's private key (a secrets.Secret bound to its ARN).
type KeySource interface {
	Current(ctx context.Context) ([]byte, error)
}

const (
	githubConnected = "connected"
	githubError     = "error"
)

// githubCheck calls GET /app as the App, time-boxed, and remembers the answer briefly (longer
// when it was good), so the endpoint answers within a second whatever GitHub does, and no number
// of requests to it can spend more than one App API call per TTL. One call at a time: concurrent
// requests wait for it and share its answer.
type githubCheck struct {
	app      AppDescriber
	host     string
	timeout  time.Duration // default 800 ms
	okTTL    time.Duration // default 60 s
	errTTL   time.Duration // default 15 s
	now      func() time.Time
	mu       sync.Mutex
	last     GitHub
	lastAt   time.Time
	lastGood bool
}

func (c *githubCheck) status(ctx context.Context) GitHub {
	c.mu.Lock()
	defer c.mu.Unlock()
	ttl := c.errTTL
	if c.lastGood {
		ttl = c.okTTL
	}
	if !c.lastAt.IsZero() && c.now().Sub(c.lastAt) < ttl {
		return c.last
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	info, err := c.app.Describe(ctx)
	c.lastAt, c.lastGood = c.now(), err == nil
	if err != nil {
		c.last = GitHub{Status: githubError, Message: c.explain(err)}
		return c.last
	}
	slug := info.Slug
	c.last = GitHub{Status: githubConnected, Message: "GitHub API authentication successful", AppSlug: &slug}
	return c.last
}

// explain turns a failed call into what an operator can act on; no key material, no token.
func (c *githubCheck) explain(err error) string {
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return "The GitHub App private key is not configured, so the App cannot authenticate."
	case errors.Is(err, githubapp.ErrBadPrivateKey):
		return "The configured private key is not an RSA private key in PEM format: put the .pem file GitHub generated for the App."
	case errors.Is(err, githubapp.ErrUnauthorized):
		return "GitHub refused the App's token: check that GitHubAppId is this App's id and that the private key belongs to this App."
	case errors.Is(err, githubapp.ErrTLS):
		return fmt.Sprintf("TLS failure talking to %s: its certificate is not trusted (for a GHES with a private CA, set the CA bundle).", c.host)
	case errors.Is(err, githubapp.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("%s did not answer within %s.", c.host, c.timeout)
	case errors.Is(err, githubapp.ErrUnreachable):
		return fmt.Sprintf("Cannot reach %s: check the server URL, DNS and the network path from the functions.", c.host)
	case errors.Is(err, githubapp.ErrRateLimited):
		return "GitHub is rate-limiting the App; runner registrations will be delayed."
	case errors.Is(err, githubapp.ErrForbidden):
		return "GitHub refused the App's request (403): check the App's permissions."
	case errors.Is(err, githubapp.ErrUnavailable):
		return fmt.Sprintf("%s answered with a server error.", c.host)
	}
	return "The GitHub check failed for an unexpected reason; see the status function's log."
}

// keyCheck reports whether the private-key secret exists and holds a parseable RSA private key;
// the key itself never leaves this function.
func keyCheck(ctx context.Context, keys KeySource) (bool, error) {
	pem, err := keys.Current(ctx)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	if _, err := jwt.ParseRSAPrivateKeyFromPEM(pem); err != nil {
		return false, nil
	}
	return true, nil
}
