package githubapp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v84/github"
)

// GitHub outcomes callers decide on; every error of this package wraps at most one of them
// (perhaps through one of the finer sentinels below).
var (
	// ErrNotInstalled: the App is not installed on the owner (operator-fixable).
	ErrNotInstalled = errors.New("github app not installed")
	// ErrForbidden: the App lacks a permission (operator-fixable).
	ErrForbidden = errors.New("github app forbidden")
	// ErrRateLimited: primary or secondary rate limit (transient).
	ErrRateLimited = errors.New("github rate limited")
	// ErrUnavailable: 5xx, timeouts, connection failures (transient).
	ErrUnavailable = errors.New("github unavailable")
	// ErrConflict: 409, e.g. a runner of that name exists.
	ErrConflict = errors.New("github conflict")
	// ErrInvalid: 422, GitHub refused the request as sent.
	ErrInvalid = errors.New("github rejected request")
	// ErrNotFound: 404 on the resource itself.
	ErrNotFound = errors.New("github resource not found")
)

// Finer outcomes for a caller that reports what is wrong (the status endpoint). Each wraps one of
// the sentinels above, so a caller that classifies on those needs no change.
var (
	// ErrUnauthorized: GitHub refused the app JWT (operator-fixable). It is an ErrForbidden.
	ErrUnauthorized = fmt.Errorf("%w: github refused the App's JWT: wrong App id, or a key that is not this App's", ErrForbidden)
	// ErrTLS: the TLS handshake failed, mostly a certificate not trusted (a GHES behind a private
	// CA needs Config.CABundle) or not for the host. It is an ErrUnavailable.
	ErrTLS = fmt.Errorf("%w: TLS failure", ErrUnavailable)
	// ErrTimeout: no answer in time (the context's deadline or Config.Timeout). It is an ErrUnavailable.
	ErrTimeout = fmt.Errorf("%w: timeout", ErrUnavailable)
	// ErrUnreachable: no connection: the host does not resolve, or refuses or cannot be routed
	// to. It is an ErrUnavailable.
	ErrUnreachable = fmt.Errorf("%w: server unreachable", ErrUnavailable)
)

// classify maps a go-github (or ghinstallation token) failure to our sentinels. tokenStep errors
// (the installation token exchange) map 404 to ErrNotInstalled.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var (
		rate   *github.RateLimitError
		abuse  *github.AbuseRateLimitError
		resp   *github.ErrorResponse
		token  *ghinstallation.HTTPError
		netErr net.Error
	)
	switch {
	case errors.As(err, &rate), errors.As(err, &abuse):
		return fmt.Errorf("%w: %v", ErrRateLimited, err)
	case errors.As(err, &token):
		if token.Response != nil {
			switch code := token.Response.StatusCode; {
			case code == http.StatusNotFound:
				return fmt.Errorf("%w: installation token: %v", ErrNotInstalled, err)
			case code == http.StatusUnauthorized: // the token exchange is authenticated by the app JWT
				return fmt.Errorf("%w: installation token: %v", ErrUnauthorized, err)
			case code == http.StatusForbidden:
				return fmt.Errorf("%w: installation token: %v", ErrForbidden, err)
			case code == http.StatusTooManyRequests:
				return fmt.Errorf("%w: installation token: %v", ErrRateLimited, err)
			}
		}
		if token.Response == nil { // no answer: a transport failure
			return fmt.Errorf("%w: installation token: %v", transportFailure(err), err)
		}
		return fmt.Errorf("%w: installation token: %v", ErrUnavailable, err)
	case errors.As(err, &resp) && resp.Response != nil:
		switch code := resp.Response.StatusCode; {
		case code == http.StatusNotFound:
			return fmt.Errorf("%w: %v", ErrNotFound, err)
		case code == http.StatusConflict:
			return fmt.Errorf("%w: %v", ErrConflict, err)
		case code == http.StatusUnprocessableEntity:
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		case code == http.StatusTooManyRequests:
			return fmt.Errorf("%w: %v", ErrRateLimited, err)
		case code == http.StatusForbidden || code == http.StatusUnauthorized:
			return fmt.Errorf("%w: %v", ErrForbidden, err)
		case code >= 500:
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return err
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr):
		return fmt.Errorf("%w: %v", transportFailure(err), err)
	}
	return err
}

// classifyAppJWT is classify for a call authenticated by the app JWT alone (GET /app), where
// GitHub's refusals name the App's credentials: 401 for a key that is not the App's, and 404
// "Integration not found" for an App id that names no App.
func classifyAppJWT(err error) error {
	var resp *github.ErrorResponse
	if errors.As(err, &resp) && resp.Response != nil {
		if code := resp.Response.StatusCode; code == http.StatusUnauthorized ||
			(code == http.StatusNotFound && resp.Message == "Integration not found") {
			return fmt.Errorf("%w: %v", ErrUnauthorized, err)
		}
	}
	return classify(err)
}

// transportFailure names what kept a request from an answer: ErrTLS, ErrTimeout, ErrUnreachable,
// or ErrUnavailable for the rest (a connection reset, a server that hung up).
func transportFailure(err error) error {
	var (
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		alert     tls.AlertError
		dns       *net.DNSError
		op        *net.OpError
		netErr    net.Error
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &authority), errors.As(err, &hostname),
		errors.As(err, &invalid), errors.As(err, &alert):
		return ErrTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ErrTimeout
	case errors.As(err, &dns), errors.As(err, &op) && op.Op == "dial":
		return ErrUnreachable
	}
	return ErrUnavailable
}
