package ghessim

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// docsURL is the documentation_url GHES 3.19 puts in its error bodies.
const docsURL = "https://docs.github.com/enterprise-server@3.19/rest"

// reply is what a route answers: a status, a JSON body (nil for none) and extra headers.
type reply struct {
	status int
	body   any
	header http.Header
}

// handlerFunc is a route's logic. It returns its answer rather than writing it, so that it can
// hold the server's lock while it decides and never while a slow client reads.
type handlerFunc func(r *http.Request) reply

// route is one pattern the server serves, in http.ServeMux syntax, relative to /api/v3.
type route struct {
	pattern string
	handle  handlerFunc
}

// routeList is every route served. conformance_test.go checks each against the OpenAPI description.
func (s *Server) routeList() []route {
	app, inst := s.requireApp, s.requireInstallation
	return []route{
		{"GET /app", app(s.getApp)},
		{"POST /app/installations/{installation_id}/access_tokens", app(s.createAccessToken)},
		{"GET /app/installations/{installation_id}", app(s.getInstallation)},
		{"GET /orgs/{org}/installation", app(s.getOrgInstallation)},
		{"GET /repos/{owner}/{repo}/installation", app(s.getRepoInstallation)},
		{"GET /users/{username}/installation", app(s.getUserInstallation)},

		{"POST /orgs/{org}/actions/runners/generate-jitconfig", inst(s.generateJITConfig)},
		{"GET /orgs/{org}/actions/runners", inst(s.listRunners)},
		{"GET /orgs/{org}/actions/runners/{runner_id}", inst(s.getRunner)},
		{"DELETE /orgs/{org}/actions/runners/{runner_id}", inst(s.deleteRunner)},
		{"POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig", inst(s.generateJITConfig)},
		{"GET /repos/{owner}/{repo}/actions/runners", inst(s.listRunners)},
		{"GET /repos/{owner}/{repo}/actions/runners/{runner_id}", inst(s.getRunner)},
		{"DELETE /repos/{owner}/{repo}/actions/runners/{runner_id}", inst(s.deleteRunner)},

		{"GET /repos/{owner}/{repo}/actions/jobs/{job_id}", inst(s.getJob)},

		{"GET /app/hook/deliveries", app(s.listDeliveries)},
		{"GET /app/hook/deliveries/{delivery_id}", app(s.getDelivery)},
		{"POST /app/hook/deliveries/{delivery_id}/attempts", app(s.redeliver)},
	}
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range s.routeList() {
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { writeReply(w, rt.handle(r)) })
	}
	// GitHub answers 404, not 405, to a method a path does not have; "/" matches whatever the
	// routes above do not, so ServeMux never answers 405.
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { writeReply(w, notFound()) })
	return mux
}

func writeReply(w http.ResponseWriter, rp reply) {
	for k, v := range rp.header {
		w.Header()[k] = v
	}
	if rp.body == nil {
		w.WriteHeader(rp.status)
		return
	}
	b, err := json.Marshal(rp.body)
	if err != nil {
		// Every body is built from our own types; failing to encode one is a bug in the simulator.
		panic("ghessim: encode response: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(rp.status)
	_, _ = w.Write(b)
}

func okReply(body any) reply { return reply{status: http.StatusOK, body: body} }

// basicError is GitHub's basic-error body.
type basicError struct {
	Message          string `json:"message"`
	DocumentationURL string `json:"documentation_url"`
	Status           string `json:"status"`
}

func errorReply(status int, message string) reply {
	return reply{status: status, body: basicError{Message: message, DocumentationURL: docsURL, Status: strconv.Itoa(status)}}
}

func notFound() reply { return errorReply(http.StatusNotFound, "Not Found") }

// validationErrorSimple is GitHub's validation-error-simple body, the 422 of the runner routes.
type validationErrorSimple struct {
	Message          string `json:"message"`
	DocumentationURL string `json:"documentation_url"`
}

func unprocessable(message string) reply {
	return reply{status: http.StatusUnprocessableEntity, body: validationErrorSimple{Message: message, DocumentationURL: docsURL}}
}

// pathID parses a numeric path parameter; GitHub answers 404 to ids that are not numbers.
func pathID(r *http.Request, name string) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	return id, err == nil
}
