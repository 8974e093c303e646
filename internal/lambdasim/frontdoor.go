package lambdasim

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Invoker is what the event sources need of a function.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// HTTP API limits the front door keeps
// (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html).
const (
	httpAPIMaxBody            = 10 << 20
	httpAPIIntegrationTimeout = 30 * time.Second
)

// FrontDoor is the stack's HTTP API on loopback: an http.Handler that turns each request into an
// API Gateway HTTP API event (payload format 2.0), invokes the route's function, and turns its
// response back into HTTP, answering as API Gateway does where the function cannot:
//
//   - a route that does not exist: 404 {"message":"Not Found"};
//   - a function error, or a response that is no valid 2.0 response: 500
//     {"message":"Internal Server Error"};
//   - no answer within the HTTP API's 30 s: 503 {"message":"Service Unavailable"};
//   - a body over the HTTP API's 10 MB: 413 {"message":"Request Entity Too Large"}.
//
// Not modelled: authorizers (a route the template puts behind AWS_IAM is served as NONE),
// throttling, custom domains and path parameters.
type FrontDoor struct {
	routes map[string]Invoker
	// AccountID and APIID fill requestContext; optional, defaults moto's account and "local".
	AccountID, APIID string
	now              func() time.Time
}

// NewFrontDoor returns a front door with the given routes: route key ("POST /webhook") →
// function.
func NewFrontDoor(routes map[string]Invoker) *FrontDoor {
	return &FrontDoor{routes: routes, now: time.Now}
}

// apiError answers as API Gateway does when it answers itself.
func apiError(w http.ResponseWriter, status int, requestID string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Apigw-Requestid", requestID)
	w.WriteHeader(status)
	msg := map[int]string{
		http.StatusNotFound:              "Not Found",
		http.StatusInternalServerError:   "Internal Server Error",
		http.StatusServiceUnavailable:    "Service Unavailable",
		http.StatusRequestEntityTooLarge: "Request Entity Too Large",
	}[status]
	_, _ = fmt.Fprintf(w, `{"message":%q}`, msg)
}

func (d *FrontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := d.now()
	requestID := newRequestID()
	key := r.Method + " " + r.URL.Path
	fn, ok := d.routes[key]
	if !ok {
		apiError(w, http.StatusNotFound, requestID)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, httpAPIMaxBody+1))
	if err != nil {
		apiError(w, http.StatusInternalServerError, requestID)
		return
	}
	if len(body) > httpAPIMaxBody {
		apiError(w, http.StatusRequestEntityTooLarge, requestID)
		return
	}
	event, err := json.Marshal(d.event(r, key, requestID, body, start))
	if err != nil {
		apiError(w, http.StatusInternalServerError, requestID)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), httpAPIIntegrationTimeout)
	defer cancel()
	out, err := fn.Invoke(ctx, event)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		apiError(w, http.StatusServiceUnavailable, requestID)
		return
	case err != nil:
		apiError(w, http.StatusInternalServerError, requestID)
		return
	}
	if err := writeResponse(w, out, requestID); err != nil {
		apiError(w, http.StatusInternalServerError, requestID)
	}
}

// v2Request is events.APIGatewayV2HTTPRequest as API Gateway sends it: without the
// authentication block the events type always encodes (API Gateway sends one only for mutual
// TLS).
type v2Request struct {
	events.APIGatewayV2HTTPRequest
	RequestContext v2Context `json:"requestContext"`
}

type v2Context struct {
	events.APIGatewayV2HTTPRequestContext
	Authentication *struct{} `json:"authentication,omitempty"`
}

// event builds the payload format 2.0 event of r.
func (d *FrontDoor) event(r *http.Request, key, requestID string, body []byte, at time.Time) v2Request {
	headers := map[string]string{}
	var cookies []string
	for name, values := range r.Header {
		lower := strings.ToLower(name)
		if lower == "cookie" {
			for _, v := range values {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[lower] = strings.Join(values, ",")
	}
	sourceIP, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		sourceIP = r.RemoteAddr
	}
	host := r.Host
	headers["host"] = host
	// What API Gateway adds on its way to the integration.
	headers["x-forwarded-for"] = sourceIP
	headers["x-forwarded-proto"] = "http"
	if _, port, err := net.SplitHostPort(host); err == nil {
		headers["x-forwarded-port"] = port
	}
	headers["x-amzn-trace-id"] = fmt.Sprintf("Root=1-%08x-%s", at.Unix(), randomHex(12))

	var query map[string]string
	if q := r.URL.Query(); len(q) > 0 {
		query = map[string]string{}
		for k, vs := range q {
			query[k] = strings.Join(vs, ",")
		}
	}
	sort.Strings(cookies)
	ev := v2Request{APIGatewayV2HTTPRequest: events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              key,
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
	}}
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	ev.RequestContext = v2Context{APIGatewayV2HTTPRequestContext: events.APIGatewayV2HTTPRequestContext{
		RouteKey:     key,
		AccountID:    cmpOr(d.AccountID, motoAccountID),
		Stage:        "$default",
		RequestID:    requestID,
		APIID:        cmpOr(d.APIID, "local"),
		DomainName:   hostname,
		DomainPrefix: strings.Split(hostname, ".")[0],
		Time:         at.UTC().Format("02/Jan/2006:15:04:05 -0700"),
		TimeEpoch:    at.UnixMilli(),
		HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
			Method:    r.Method,
			Path:      r.URL.Path,
			Protocol:  r.Proto,
			SourceIP:  sourceIP,
			UserAgent: r.UserAgent(),
		},
	}}
	if len(body) > 0 {
		if textual(r.Header.Get("Content-Type")) {
			ev.Body = string(body)
		} else {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}
	}
	return ev
}

// textual reports whether API Gateway passes a body of this content type as text; it
// base64-encodes everything else (form posts included) and flags it isBase64Encoded.
func textual(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", mt == "application/xml", mt == "application/javascript",
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	return false
}

// writeResponse writes the function's payload format 2.0 response: a document with statusCode
// is the response; any other valid JSON is the body of a 200 application/json response, as API
// Gateway infers it.
func writeResponse(w http.ResponseWriter, out []byte, requestID string) error {
	var probe map[string]json.RawMessage
	structured := json.Unmarshal(out, &probe) == nil && probe["statusCode"] != nil
	if !structured {
		if !json.Valid(out) {
			return errors.New("response is not JSON")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Apigw-Requestid", requestID)
		_, _ = w.Write(out)
		return nil
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	if resp.StatusCode < 100 || resp.StatusCode > 599 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			return fmt.Errorf("decode base64 body: %w", err)
		}
	}
	h := w.Header()
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	h.Set("Apigw-Requestid", requestID)
	if h.Get("Content-Type") == "" {
		h["Content-Type"] = nil // no sniffing: API Gateway sends none unless the function does
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
	return nil
}

// newRequestID returns an id shaped like an HTTP API's (e.g. "JKJaXmPLvHcESHA=").
func newRequestID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
