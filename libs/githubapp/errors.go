package githubapp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v84/github"
)

// GitHub outcomes callers decide on; every error of this package wraps at most one of them.
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
			case code == http.StatusForbidden || code == http.StatusUnauthorized:
				return fmt.Errorf("%w: installation token: %v", ErrForbidden, err)
			case code == http.StatusTooManyRequests:
				return fmt.Errorf("%w: installation token: %v", ErrRateLimited, err)
			}
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
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}
