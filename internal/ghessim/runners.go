package ghessim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// GitHub's bounds on the routes below.
const (
	defaultRunnerGroupID = 1 // "Default", the only group on a fresh GHES
	maxLabels            = 100
	defaultPerPage       = 30
	maxPerPage           = 100
)

// readOnlyLabels are the labels GitHub marks read-only, those the runner itself would add for
// its OS and architecture; any other label is custom.
var readOnlyLabels = []string{"self-hosted", "linux", "windows", "macos", "x64", "arm", "arm64"}

type labelJSON struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// runnerJSON is GitHub's runner.
type runnerJSON struct {
	ID            int64       `json:"id"`
	RunnerGroupID int64       `json:"runner_group_id"`
	Name          string      `json:"name"`
	OS            string      `json:"os"`
	Status        string      `json:"status"`
	Busy          bool        `json:"busy"`
	Ephemeral     bool        `json:"ephemeral"`
	Labels        []labelJSON `json:"labels"`
}

// runnerJSON renders r; the caller holds s.mu.
func (s *Server) runnerJSON(r *runnerRecord) runnerJSON {
	pub := r.public()
	out := runnerJSON{
		ID:            r.ID,
		RunnerGroupID: r.groupID,
		Name:          r.Name,
		OS:            "unknown", // until the runner connects and says, as on GitHub
		Status:        pub.Status,
		Busy:          r.Busy,
		Ephemeral:     true, // every runner here is a JIT runner
		Labels:        make([]labelJSON, 0, len(r.Labels)),
	}
	if r.connected {
		out.OS = "Linux"
	}
	for _, name := range r.Labels {
		id, ok := s.labelIDs[strings.ToLower(name)]
		if !ok {
			id = s.id()
			s.labelIDs[strings.ToLower(name)] = id
		}
		typ := "custom"
		if containsFold(readOnlyLabels, name) {
			typ = "read-only"
		}
		out.Labels = append(out.Labels, labelJSON{ID: id, Name: name, Type: typ})
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// level is the owner and repo a runner route is about; repo is empty on /orgs routes.
func level(r *http.Request) (owner, repoName string) {
	if org := r.PathValue("org"); org != "" {
		return org, ""
	}
	return r.PathValue("owner"), r.PathValue("repo")
}

// atLevel reports whether runner rr is registered exactly at that level (org runners are not
// listed under a repo, nor repo runners under their org).
func atLevel(rr *runnerRecord, owner, repoName string) bool {
	return strings.EqualFold(rr.Owner, owner) && strings.EqualFold(rr.Repo, repoName)
}

type jitConfigRequest struct {
	Name          string   `json:"name"`
	RunnerGroupID *int64   `json:"runner_group_id"`
	Labels        []string `json:"labels"`
	WorkFolder    string   `json:"work_folder"`
}

type jitConfigJSON struct {
	Runner           runnerJSON `json:"runner"`
	EncodedJITConfig string     `json:"encoded_jit_config"`
}

func (s *Server) generateJITConfig(r *http.Request) reply {
	var req jitConfigRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return errorReply(http.StatusBadRequest, "Problems parsing JSON")
	}
	if msg := req.invalid(); msg != "" {
		return unprocessable("Invalid request.\n\n" + msg)
	}
	if *req.RunnerGroupID != defaultRunnerGroupID {
		return notFound()
	}
	if req.WorkFolder == "" {
		req.WorkFolder = "_work"
	}
	owner, repoName := level(r)

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range s.runners {
		if atLevel(rr, owner, repoName) && strings.EqualFold(rr.Name, req.Name) {
			return errorReply(http.StatusConflict, fmt.Sprintf("Already exists - A runner with the name %s already exists.", req.Name))
		}
	}
	rr := &runnerRecord{
		Runner:     Runner{ID: s.id(), Name: req.Name, Owner: owner, Repo: repoName, Labels: req.Labels},
		groupID:    *req.RunnerGroupID,
		workFolder: req.WorkFolder,
		clientID:   newGUID(),
	}
	rr.JITConfig = s.encodeJITConfig(rr)
	s.runners[rr.ID] = rr
	return reply{status: http.StatusCreated, body: jitConfigJSON{Runner: s.runnerJSON(rr), EncodedJITConfig: rr.JITConfig}}
}

// invalid returns GitHub's message for the first rule of the request schema broken, or "".
func (req jitConfigRequest) invalid() string {
	switch {
	case req.Name == "":
		return `"name" wasn't supplied.`
	case req.RunnerGroupID == nil:
		return `"runner_group_id" wasn't supplied.`
	case len(req.Labels) == 0:
		return `For 'properties/labels', [] has fewer items than minimum of 1.`
	case len(req.Labels) > maxLabels:
		return fmt.Sprintf(`For 'properties/labels', %d items is more than maximum of %d.`, len(req.Labels), maxLabels)
	case containsFold(req.Labels, ""):
		return `For 'properties/labels', labels must not be empty.`
	}
	return ""
}

type runnerListJSON struct {
	TotalCount int          `json:"total_count"`
	Runners    []runnerJSON `json:"runners"`
}

func (s *Server) listRunners(r *http.Request) reply {
	owner, repoName := level(r)
	q := r.URL.Query()
	name := q.Get("name")
	perPage := min(queryInt(q.Get("per_page"), defaultPerPage), maxPerPage)
	page := queryInt(q.Get("page"), 1)

	s.mu.Lock()
	defer s.mu.Unlock()
	var matched []*runnerRecord
	for _, rr := range s.sortedRunners() {
		if atLevel(rr, owner, repoName) && (name == "" || strings.EqualFold(rr.Name, name)) {
			matched = append(matched, rr)
		}
	}
	out := runnerListJSON{TotalCount: len(matched), Runners: []runnerJSON{}}
	for i := (page - 1) * perPage; i < len(matched) && i < page*perPage; i++ {
		out.Runners = append(out.Runners, s.runnerJSON(matched[i]))
	}
	return okReply(out)
}

// queryInt reads a positive integer query parameter; GitHub ignores a bad one.
func queryInt(v string, def int) int {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return def
	}
	return n
}

// runnerAt returns the runner the path names, at the path's org or repo level; s.mu must be held.
func (s *Server) runnerAt(r *http.Request) (*runnerRecord, bool) {
	id, ok := pathID(r, "runner_id")
	if !ok {
		return nil, false
	}
	owner, repoName := level(r)
	rr := s.runners[id]
	return rr, rr != nil && atLevel(rr, owner, repoName)
}

func (s *Server) getRunner(r *http.Request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	rr, ok := s.runnerAt(r)
	if !ok {
		return notFound()
	}
	return okReply(s.runnerJSON(rr))
}

func (s *Server) deleteRunner(r *http.Request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	rr, ok := s.runnerAt(r)
	if !ok {
		return notFound()
	}
	id := rr.ID
	if rr.Busy {
		return unprocessable(fmt.Sprintf("Bad request - Runner %q is still running a job", rr.Name))
	}
	delete(s.runners, id)
	return reply{status: http.StatusNoContent}
}
