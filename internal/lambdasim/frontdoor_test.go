package lambdasim

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestFrontDoor: fixture is the echo Lambda behind a front door (on loopback) with the route
// POST /webhook; the Lambda answers with the event it received. A JSON post arrives as a payload
// format 2.0 event: version, route key, raw path and query, lower-cased headers with repeated
// ones comma-joined, cookies apart, query parameters, request context (method, path, protocol,
// source IP, user agent, request id, time) and the body as text. A form post's body arrives
// base64-encoded and flagged. The function's status and headers come back; a function error is
// API Gateway's 500, an unknown route or method its 404.
func TestFrontDoor(t *testing.T) {
	t.Parallel()
	fn := startEcho(t, FunctionOptions{Instances: 2})
	srv := httptest.NewServer(NewFrontDoor(map[string]Invoker{"POST /webhook": fn}))
	t.Cleanup(srv.Close)

	do := func(method, path, contentType, body string, header http.Header) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, vs := range header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, raw
	}

	body := `{"action":"queued"}`
	before := time.Now()
	status, header, raw := do(http.MethodPost, "/webhook?a=1&a=2&b=x%20y", "application/json", body, http.Header{
		"X-Github-Event": {"workflow_job"},
		"X-Multi":        {"one", "two"},
		"Cookie":         {"c1=v1; c2=v2"},
		"User-Agent":     {"GitHub-Hookshot/abc123"},
	})
	if status != http.StatusOK || header.Get("X-Echo") != "yes" || header.Get("Content-Type") != "application/json" {
		t.Fatalf("POST /webhook: %d %v %s", status, header, raw)
	}
	var got events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("decode the event the function received: %v\n%s", err, raw)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9+/]{14}==$`).MatchString(got.RequestContext.RequestID) {
		t.Errorf("request id %q", got.RequestContext.RequestID)
	}
	if ms := got.RequestContext.TimeEpoch; ms < before.UnixMilli() || ms > time.Now().UnixMilli() {
		t.Errorf("timeEpoch %d outside the request", ms)
	}
	if _, err := time.Parse("02/Jan/2006:15:04:05 -0700", got.RequestContext.Time); err != nil {
		t.Errorf("time %q: %v", got.RequestContext.Time, err)
	}
	if !strings.HasPrefix(got.Headers["x-amzn-trace-id"], "Root=1-") {
		t.Errorf("x-amzn-trace-id %q", got.Headers["x-amzn-trace-id"])
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	port := host[strings.LastIndex(host, ":")+1:]
	want := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       "POST /webhook",
		RawPath:        "/webhook",
		RawQueryString: "a=1&a=2&b=x%20y",
		Cookies:        []string{"c1=v1", "c2=v2"},
		Headers: map[string]string{
			"accept-encoding": "gzip", "content-length": "19", "content-type": "application/json",
			"host": host, "user-agent": "GitHub-Hookshot/abc123", "x-github-event": "workflow_job", "x-multi": "one,two",
			"x-forwarded-for": "127.0.0.1", "x-forwarded-port": port, "x-forwarded-proto": "http",
		},
		QueryStringParameters: map[string]string{"a": "1,2", "b": "x y"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: "POST /webhook", AccountID: "123456789012", Stage: "$default", APIID: "local",
			DomainName: "127.0.0.1", DomainPrefix: "127",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: "POST", Path: "/webhook", Protocol: "HTTP/1.1", SourceIP: "127.0.0.1", UserAgent: "GitHub-Hookshot/abc123",
			},
		},
		Body: body,
	}
	ignore := cmpopts.IgnoreFields(events.APIGatewayV2HTTPRequestContext{}, "RequestID", "Time", "TimeEpoch")
	noTrace := cmpopts.IgnoreMapEntries(func(k, _ string) bool { return k == "x-amzn-trace-id" })
	if diff := cmp.Diff(want, got, ignore, noTrace); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if strings.Contains(string(raw), `"authentication"`) {
		t.Errorf("event carries an authentication block, which API Gateway sends only for mutual TLS")
	}

	form := "payload=%7B%22a%22%3A1%7D"
	_, _, raw = do(http.MethodPost, "/webhook", "application/x-www-form-urlencoded", form, nil)
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if decoded, _ := base64.StdEncoding.DecodeString(got.Body); !got.IsBase64Encoded || string(decoded) != form {
		t.Errorf("form body %q (base64 %v), want %q base64-encoded", got.Body, got.IsBase64Encoded, form)
	}

	for _, c := range []struct {
		name, method, path string
		header             http.Header
		wantStatus         int
		wantBody           string // exact, when set
	}{
		{"function's status", http.MethodPost, "/webhook", http.Header{"X-Echo-Status": {"202"}}, http.StatusAccepted, ""},
		{"function error", http.MethodPost, "/webhook", http.Header{"X-Echo-Error": {"broken"}}, http.StatusInternalServerError, `{"message":"Internal Server Error"}`},
		{"unknown path", http.MethodPost, "/nope", nil, http.StatusNotFound, `{"message":"Not Found"}`},
		{"other method", http.MethodGet, "/webhook", nil, http.StatusNotFound, `{"message":"Not Found"}`},
	} {
		status, header, raw := do(c.method, c.path, "application/json", "{}", c.header)
		if status != c.wantStatus || c.wantBody != "" && string(raw) != c.wantBody {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, raw, c.wantStatus, c.wantBody)
		}
		if header.Get("Apigw-Requestid") == "" {
			t.Errorf("%s: no apigw-requestid header", c.name)
		}
	}
}

// TestWriteResponse: a function's response as API Gateway turns it into HTTP (payload format
// 2.0): a structured response with its status, headers, cookies and (base64) body; any other
// JSON as a 200 application/json body; a response that is not JSON, or a status out of range, an
// error (the front door's 500).
func TestWriteResponse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, out  string
		wantErr    bool
		wantStatus int
		wantHeader http.Header
		wantBody   string
	}{
		{name: "structured", out: `{"statusCode":201,"headers":{"content-type":"text/plain","x-a":"b"},"cookies":["s=1"],"body":"made"}`,
			wantStatus: 201, wantHeader: http.Header{"Content-Type": {"text/plain"}, "X-A": {"b"}, "Set-Cookie": {"s=1"}}, wantBody: "made"},
		{name: "base64", out: `{"statusCode":200,"body":"aGk=","isBase64Encoded":true}`, wantStatus: 200, wantHeader: http.Header{}, wantBody: "hi"},
		{name: "inferred", out: `{"ok":true}`, wantStatus: 200, wantHeader: http.Header{"Content-Type": {"application/json"}}, wantBody: `{"ok":true}`},
		{name: "inferred string", out: `"hello"`, wantStatus: 200, wantHeader: http.Header{"Content-Type": {"application/json"}}, wantBody: `"hello"`},
		{name: "not JSON", out: `hello`, wantErr: true},
		{name: "bad status", out: `{"statusCode":42}`, wantErr: true},
	} {
		rec := httptest.NewRecorder()
		err := writeResponse(rec, []byte(c.out), "rid")
		if c.wantErr {
			if err == nil {
				t.Errorf("%s: no error", c.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		h := rec.Result().Header
		h.Del("Apigw-Requestid")
		for k, v := range h {
			if v == nil {
				delete(h, k)
			}
		}
		if rec.Code != c.wantStatus || rec.Body.String() != c.wantBody {
			t.Errorf("%s: %d %q, want %d %q", c.name, rec.Code, rec.Body.String(), c.wantStatus, c.wantBody)
		}
		if diff := cmp.Diff(c.wantHeader, h); diff != "" {
			t.Errorf("%s: headers (-want +got):\n%s", c.name, diff)
		}
	}
}
