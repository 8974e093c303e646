package ghessim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/spotrunner/spotrunner/internal/world"
)

// specServer replaces the description's templated server ({protocol}://{hostname}/api/v3, which
// the routers cannot match): requests are checked as if sent there, whatever port the simulator
// of a case listens on, so that one router serves every parallel case.
const specServer = "http://ghes.local/api/v3"

// ghesSpec is GitHub's GHES 3.19 description and a router over it, loaded once: the file is
// 11 MB and takes about two seconds to load.
var ghesSpec struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

func loadSpec(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	file := world.Fixture(t, "@octokit/openapi/generated/ghes-3.19.json")
	ghesSpec.once.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromFile(file)
		if err != nil {
			ghesSpec.err = fmt.Errorf("load %s: %w", file, err)
			return
		}
		doc.Servers = openapi3.Servers{{URL: specServer}}
		ghesSpec.doc = doc
		ghesSpec.router, ghesSpec.err = gorillamux.NewRouter(doc)
	})
	if ghesSpec.err != nil {
		t.Fatal(ghesSpec.err)
	}
	return ghesSpec.doc, ghesSpec.router
}

// validation checks everything but security, which the spec leaves to GitHub: parameters,
// request bodies, statuses (an undocumented one fails), response bodies, and the uri format,
// which kin-openapi does not check by default.
var validation = &openapi3filter.Options{
	AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	IncludeResponseStatus: true,
	MultiError:            true,
	SchemaValidationOptions: []openapi3.SchemaValidationOption{
		openapi3.WithStringFormatValidator("uri", openapi3.NewCallbackValidator(func(v string) error {
			u, err := url.Parse(v)
			if err == nil && !u.IsAbs() {
				err = fmt.Errorf("%q is not an absolute URI", v)
			}
			return err
		})),
	},
}

// conformanceWorld is the state every case starts from, so that every route has something to
// show: org acme with idle runner "idle" and runner "busy" on job 1, repo acme/app with idle
// runner "ridle" and runner "rbusy" on job 2, queued job 3, completed job 4, user octocat, and one
// recorded delivery.
type conformanceWorld struct {
	s               *Server
	base            string
	orgTok, userTok string
	ids             *strings.Replacer // {idle} {busy} {ridle} {rbusy} {delivery}
	receiverURL     string
	webhookPayloads func() []received
}

func newConformanceWorld(t *testing.T) *conformanceWorld {
	t.Helper()
	s, base := startSim(t)
	w := &conformanceWorld{s: s, base: base}
	w.orgTok = installationToken(t, base, strconv.Itoa(testOrgInst))
	w.userTok = installationToken(t, base, strconv.Itoa(testUsrInst))
	idle, _ := generateRunner(t, base, "orgs/acme", w.orgTok, "idle", "self-hosted", "spotrunner/small")
	busy, _ := generateRunner(t, base, "orgs/acme", w.orgTok, "busy", "self-hosted", "spotrunner/small")
	ridle, _ := generateRunner(t, base, "repos/acme/app", w.orgTok, "ridle", "self-hosted")
	rbusy, _ := generateRunner(t, base, "repos/acme/app", w.orgTok, "rbusy", "self-hosted", "x64")
	s.AddJob(Job{ID: 1, RunID: 100, Owner: "acme", Repo: "app", Name: "build", Labels: []string{"self-hosted", "spotrunner/small"}})
	s.AddJob(Job{ID: 2, RunID: 100, Owner: "acme", Repo: "app", Name: "test", Labels: []string{"self-hosted", "x64"}})
	s.AddJob(Job{ID: 3, RunID: 101, Owner: "acme", Repo: "app", Name: "lint", Labels: []string{"self-hosted"}})
	s.AddJob(Job{ID: 4, RunID: 101, Owner: "acme", Repo: "app", Name: "docs", Labels: []string{"self-hosted"}})
	for job, runner := range map[int64]string{1: "busy", 2: "rbusy"} {
		if err := s.AssignJob(job, runner); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CompleteJob(4, "cancelled"); err != nil {
		t.Fatal(err)
	}
	rc := startReceiver(t, http.StatusOK)
	w.receiverURL, w.webhookPayloads = rc.url, rc.all
	if _, _, err := s.SendWorkflowJob(t.Context(), rc.url, 3, "queued"); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	delivery := s.deliveries[0].id
	s.mu.Unlock()
	id := func(n int64) string { return strconv.FormatInt(n, 10) }
	w.ids = strings.NewReplacer("{idle}", id(idle), "{busy}", id(busy), "{ridle}", id(ridle), "{rbusy}", id(rbusy), "{delivery}", id(delivery))
	return w
}

// conformanceCase is one request to the simulator, checked against the description.
type conformanceCase struct {
	name   string
	method string
	path   string // after /api/v3; placeholders as in conformanceWorld.ids
	auth   string // "app", "org", "user" or "bad-jwt"
	body   any
	// specRejects marks a request the description itself refuses (a 422 case): the check is
	// that the validator refuses it too, and that the simulator's answer is still documented.
	specRejects bool
	fault       func(s *Server)
	want        int
}

// TestOpenAPIConformance: fixture @octokit/openapi generated/ghes-3.19.json (GitHub's GHES 3.19
// REST description). Every route the simulator serves gets realistic requests, success and the
// documented errors; each request and each answer (status, headers, body) must validate against
// the description, and every route must be exercised. The signed webhooks must validate against
// the description's webhook schemas. A self-check feeds broken answers through the same
// validator, which must refuse them, so that the test cannot pass by validating nothing.
func TestOpenAPIConformance(t *testing.T) {
	t.Parallel()
	doc, router := loadSpec(t)

	jit := func(name string, labels ...string) map[string]any {
		return map[string]any{"name": name, "runner_group_id": 1, "labels": labels, "work_folder": "_work"}
	}
	tests := []conformanceCase{
		{name: "app", method: "GET", path: "/app", auth: "app", want: 200},
		{name: "app, slow", method: "GET", path: "/app", auth: "app", want: 200,
			fault: func(s *Server) { s.Fail("GET /app", 1, 0, WithDelay(50*time.Millisecond)) }},
		{name: "token", method: "POST", path: "/app/installations/11/access_tokens", auth: "app", body: map[string]any{"permissions": map[string]string{"organization_self_hosted_runners": "write"}}, want: 201},
		{name: "token without body", method: "POST", path: "/app/installations/12/access_tokens", auth: "app", want: 201},
		{name: "token, bad JWT", method: "POST", path: "/app/installations/11/access_tokens", auth: "bad-jwt", want: 401},
		{name: "token, rate limited", method: "POST", path: "/app/installations/11/access_tokens", auth: "app", want: 403,
			fault: func(s *Server) { s.Fail("POST /app/installations/*/access_tokens", 1, 403, WithRateLimit()) }},
		{name: "token, unknown installation", method: "POST", path: "/app/installations/99/access_tokens", auth: "app", want: 404},
		{name: "token for repositories", method: "POST", path: "/app/installations/11/access_tokens", auth: "app", body: map[string]any{"repositories": []string{"app"}}, want: 422},
		{name: "installation", method: "GET", path: "/app/installations/11", auth: "app", want: 200},
		{name: "user installation by id", method: "GET", path: "/app/installations/12", auth: "app", want: 200},
		{name: "installation, unknown", method: "GET", path: "/app/installations/99", auth: "app", want: 404},
		{name: "org installation", method: "GET", path: "/orgs/acme/installation", auth: "app", want: 200},
		{name: "repo installation", method: "GET", path: "/repos/acme/app/installation", auth: "app", want: 200},
		{name: "repo installation, unknown repo", method: "GET", path: "/repos/acme/nope/installation", auth: "app", want: 404},
		{name: "user installation", method: "GET", path: "/users/octocat/installation", auth: "app", want: 200},

		{name: "org JIT config", method: "POST", path: "/orgs/acme/actions/runners/generate-jitconfig", auth: "org", body: jit("i-0new", "self-hosted", "spotrunner/small/cpu=4"), want: 201},
		{name: "org JIT config, name taken", method: "POST", path: "/orgs/acme/actions/runners/generate-jitconfig", auth: "org", body: jit("idle", "self-hosted"), want: 409},
		{name: "org JIT config, no labels", method: "POST", path: "/orgs/acme/actions/runners/generate-jitconfig", auth: "org", body: jit("i-0new"), specRejects: true, want: 422},
		{name: "org JIT config, unknown group", method: "POST", path: "/orgs/acme/actions/runners/generate-jitconfig", auth: "org", body: map[string]any{"name": "x", "runner_group_id": 9, "labels": []string{"a"}}, want: 404},
		{name: "repo JIT config", method: "POST", path: "/repos/octocat/tools/actions/runners/generate-jitconfig", auth: "user", body: jit("i-0new", "self-hosted"), want: 201},
		{name: "repo JIT config, name taken", method: "POST", path: "/repos/acme/app/actions/runners/generate-jitconfig", auth: "org", body: jit("ridle", "self-hosted"), want: 409},
		{name: "repo JIT config, 101 labels", method: "POST", path: "/repos/acme/app/actions/runners/generate-jitconfig", auth: "org", body: jit("i-0new", make([]string, 101)...), specRejects: true, want: 422},

		{name: "org runners", method: "GET", path: "/orgs/acme/actions/runners?per_page=10&page=1", auth: "org", want: 200},
		{name: "org runners by name", method: "GET", path: "/orgs/acme/actions/runners?name=busy", auth: "org", want: 200},
		{name: "org runner", method: "GET", path: "/orgs/acme/actions/runners/{busy}", auth: "org", want: 200},
		{name: "delete org runner", method: "DELETE", path: "/orgs/acme/actions/runners/{idle}", auth: "org", want: 204},
		{name: "delete busy org runner", method: "DELETE", path: "/orgs/acme/actions/runners/{busy}", auth: "org", want: 422},
		{name: "repo runners", method: "GET", path: "/repos/acme/app/actions/runners", auth: "org", want: 200},
		{name: "repo runners, empty", method: "GET", path: "/repos/octocat/tools/actions/runners", auth: "user", want: 200},
		{name: "repo runner", method: "GET", path: "/repos/acme/app/actions/runners/{rbusy}", auth: "org", want: 200},
		{name: "delete repo runner", method: "DELETE", path: "/repos/acme/app/actions/runners/{ridle}", auth: "org", want: 204},
		{name: "delete busy repo runner", method: "DELETE", path: "/repos/acme/app/actions/runners/{rbusy}", auth: "org", want: 422},

		{name: "job in progress", method: "GET", path: "/repos/acme/app/actions/jobs/1", auth: "org", want: 200},
		{name: "job queued", method: "GET", path: "/repos/acme/app/actions/jobs/3", auth: "org", want: 200},
		{name: "job cancelled", method: "GET", path: "/repos/acme/app/actions/jobs/4", auth: "org", want: 200},

		{name: "deliveries", method: "GET", path: "/app/hook/deliveries?per_page=5", auth: "app", want: 200},
		{name: "deliveries, failures", method: "GET", path: "/app/hook/deliveries?status=failure", auth: "app", want: 200},
		{name: "deliveries, bad cursor", method: "GET", path: "/app/hook/deliveries?cursor=nope", auth: "app", want: 400},
		{name: "delivery", method: "GET", path: "/app/hook/deliveries/{delivery}", auth: "app", want: 200},
		{name: "redelivery", method: "POST", path: "/app/hook/deliveries/{delivery}/attempts", auth: "app", want: 202},
	}

	var mu sync.Mutex
	covered := map[string]bool{}
	t.Run("routes", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				w := newConformanceWorld(t)
				pattern := checkRoute(t, router, w, tt)
				if tt.want < 300 {
					mu.Lock()
					covered[pattern] = true
					mu.Unlock()
				}
			})
		}
	})
	// Every route the simulator serves has a success case above.
	for _, rt := range New(Options{}).routeList() {
		if !covered[rt.pattern] {
			t.Errorf("route %q has no successful conformance case", rt.pattern)
		}
	}

	t.Run("webhooks", func(t *testing.T) {
		t.Parallel()
		w := newConformanceWorld(t)
		for _, send := range []struct {
			job    int64
			action string
		}{{3, "queued"}, {3, "waiting"}, {1, "in_progress"}, {4, "completed"}} {
			if _, _, err := w.s.SendWorkflowJob(t.Context(), w.receiverURL, send.job, send.action); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := w.s.SendPing(t.Context(), w.receiverURL); err != nil {
			t.Fatal(err)
		}
		for _, got := range w.webhookPayloads() {
			var payload map[string]any
			if err := json.Unmarshal(got.body, &payload); err != nil {
				t.Fatal(err)
			}
			schema := "webhook-ping"
			if got.header.Get("X-GitHub-Event") == "workflow_job" {
				schema = "webhook-workflow-job-" + strings.ReplaceAll(payload["action"].(string), "_", "-")
			}
			if err := doc.Components.Schemas[schema].Value.VisitJSON(payload, validation.SchemaValidationOptions...); err != nil {
				t.Errorf("%s payload does not match %s: %v", got.header.Get("X-GitHub-Event"), schema, err)
			}
		}
	})

	t.Run("self-check", func(t *testing.T) {
		t.Parallel()
		selfCheck(t, router)
	})
}

// checkRoute sends tt to the simulator and validates the request and the answer; it returns the
// simulator's route pattern that served it.
func checkRoute(t *testing.T, router routers.Router, w *conformanceWorld, tt conformanceCase) string {
	t.Helper()
	if tt.fault != nil {
		tt.fault(w.s)
	}
	path := w.ids.Replace(tt.path)
	var body []byte
	if tt.body != nil {
		var err error
		if body, err = json.Marshal(tt.body); err != nil {
			t.Fatal(err)
		}
	}

	specReq := httptest.NewRequest(tt.method, specServer+path, bytes.NewReader(body))
	if body != nil {
		specReq.Header.Set("Content-Type", "application/json")
	}
	route, params, err := router.FindRoute(specReq)
	if err != nil {
		t.Fatalf("%s %s is not in the GHES description: %v", tt.method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: specReq, PathParams: params, Route: route, Options: validation}
	if err := openapi3filter.ValidateRequest(t.Context(), in); (err != nil) != tt.specRejects {
		t.Errorf("request validation: %v (want the description to refuse it: %v)", err, tt.specRejects)
	}

	auth := map[string]string{
		"app":     "Bearer " + appJWT(t, appKey(), nil),
		"org":     "token " + w.orgTok,
		"user":    "token " + w.userTok,
		"bad-jwt": "Bearer not.a.jwt",
	}[tt.auth]
	var send any
	if body != nil {
		send = rawJSON(body)
	}
	got := call(t, tt.method, w.base+apiPrefix+path, auth, send)
	if got.status != tt.want {
		t.Errorf("status = %d, want %d; body %s", got.status, tt.want, got.body)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 got.status,
		Header:                 got.header,
		Body:                   io.NopCloser(bytes.NewReader(got.body)),
		Options:                validation,
	}
	if err := openapi3filter.ValidateResponse(t.Context(), out); err != nil {
		t.Errorf("response to %s %s does not match the GHES description:\n%v\nbody: %s", tt.method, path, err, got.body)
	}

	simReq := httptest.NewRequest(tt.method, path, nil)
	_, pattern := w.s.routes().Handler(simReq)
	return pattern
}

// selfCheck: answers a simulator could wrongly give must fail the same validation.
func selfCheck(t *testing.T, router routers.Router) {
	good := `{"runner":{"id":5,"runner_group_id":1,"name":"r","os":"unknown","status":"offline","busy":false,"ephemeral":true,` +
		`"labels":[{"id":1,"name":"self-hosted","type":"read-only"}]},"encoded_jit_config":"e30="}`
	tests := []struct {
		name   string
		status int
		body   string
		valid  bool
	}{
		{"the good answer passes", 201, good, true},
		{"runner id as a string", 201, strings.Replace(good, `"id":5`, `"id":"5"`, 1), false},
		{"busy missing", 201, strings.Replace(good, `"busy":false,`, ``, 1), false},
		{"encoded_jit_config missing", 201, strings.Replace(good, `,"encoded_jit_config":"e30="`, ``, 1), false},
		{"label type outside its enum", 201, strings.Replace(good, `"read-only"`, `"builtin"`, 1), false},
		{"undocumented status", 200, good, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("POST", specServer+"/orgs/acme/actions/runners/generate-jitconfig",
				strings.NewReader(`{"name":"r","runner_group_id":1,"labels":["self-hosted"]}`))
			req.Header.Set("Content-Type", "application/json")
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatal(err)
			}
			in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: validation}
			err = openapi3filter.ValidateResponse(t.Context(), &openapi3filter.ResponseValidationInput{
				RequestValidationInput: in,
				Status:                 tt.status,
				Header:                 http.Header{"Content-Type": {"application/json; charset=utf-8"}},
				Body:                   io.NopCloser(strings.NewReader(tt.body)),
				Options:                validation,
			})
			if (err == nil) != tt.valid {
				t.Errorf("validation error = %v; want valid %v", err, tt.valid)
			}
		})
	}
}
