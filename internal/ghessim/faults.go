package ghessim

import (
	"fmt"
	"net/http"
	"path"
	"strconv"
	"time"
)

// secondaryRateLimitDocs is where GitHub's secondary-rate-limit bodies point; go-github
// recognises an AbuseRateLimitError by this suffix.
const secondaryRateLimitDocs = docsURL + "/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"

// fault is an injected answer for the next n matching requests.
type fault struct {
	pattern   string
	left      int
	status    int
	delay     time.Duration
	rateLimit bool
}

// FaultOption changes an injected fault.
type FaultOption func(*fault)

// WithDelay makes the fault wait d before answering, to trigger client timeouts. With status 0,
// the request is then served normally: a slow GitHub rather than a failing one.
func WithDelay(d time.Duration) FaultOption { return func(f *fault) { f.delay = d } }

// WithRateLimit makes the fault a secondary rate limit: GitHub's message and documentation_url,
// Retry-After, and the x-ratelimit-* headers with none remaining. Retry-After and the reset are
// one second away so that a client honouring them does not stall a test. (go-github checks
// x-ratelimit-remaining first, so it reports this as a *RateLimitError.)
func WithRateLimit() FaultOption { return func(f *fault) { f.rateLimit = true } }

// Fail makes the next n requests whose "METHOD /path" (the path after /api/v3, without query)
// matches pattern, in path.Match syntax, answer status with a GitHub-shaped error body. Faults
// apply before authentication, as a failing GitHub answers before looking at credentials; the
// oldest matching fault with requests left wins. Fail panics on a malformed pattern or n < 1.
func (s *Server) Fail(pattern string, n int, status int, opts ...FaultOption) {
	if _, err := path.Match(pattern, ""); err != nil || n < 1 {
		panic(fmt.Sprintf("ghessim: Fail(%q, %d): a fault needs a valid pattern and n >= 1 (pattern error: %v)", pattern, n, err))
	}
	f := &fault{pattern: pattern, left: n, status: status}
	for _, o := range opts {
		o(f)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// takeFault returns the fault for call, counting the request against it, or nil.
func (s *Server) takeFault(call string) *fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if matched, _ := path.Match(f.pattern, call); !matched {
			continue
		}
		f.left--
		if f.left <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return f
	}
	return nil
}

// answer plays the fault and reports whether it answered the request; false means the request
// is to be served normally (a delay-only fault).
func (f *fault) answer(w http.ResponseWriter, r *http.Request) bool {
	if f.delay > 0 {
		t := time.NewTimer(f.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true // the client gave up; there is no one to answer
		}
	}
	if f.status == 0 {
		return false
	}
	if !f.rateLimit {
		writeReply(w, errorReply(f.status, http.StatusText(f.status)))
		return true
	}
	h := w.Header()
	h.Set("Retry-After", "1")
	h.Set("X-RateLimit-Limit", "5000")
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Used", "5000")
	h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
	writeReply(w, reply{status: f.status, body: basicError{
		Message:          "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
		DocumentationURL: secondaryRateLimitDocs,
		Status:           strconv.Itoa(f.status),
	}})
	return true
}
