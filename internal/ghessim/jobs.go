package ghessim

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// jobJSON is GitHub's job, which is also the workflow_job of webhook payloads.
type jobJSON struct {
	ID              int64      `json:"id"`
	RunID           int64      `json:"run_id"`
	RunURL          string     `json:"run_url"`
	RunAttempt      int64      `json:"run_attempt"`
	NodeID          string     `json:"node_id"`
	HeadSHA         string     `json:"head_sha"`
	URL             string     `json:"url"`
	HTMLURL         string     `json:"html_url"`
	Status          string     `json:"status"`
	Conclusion      *string    `json:"conclusion"`
	CreatedAt       string     `json:"created_at"`
	StartedAt       string     `json:"started_at"`
	CompletedAt     *string    `json:"completed_at"`
	Name            string     `json:"name"`
	Steps           []struct{} `json:"steps"` // tests run no steps
	CheckRunURL     string     `json:"check_run_url"`
	Labels          []string   `json:"labels"`
	RunnerID        *int64     `json:"runner_id"`
	RunnerName      *string    `json:"runner_name"`
	RunnerGroupID   *int64     `json:"runner_group_id"`
	RunnerGroupName *string    `json:"runner_group_name"`
	WorkflowName    *string    `json:"workflow_name"`
	HeadBranch      *string    `json:"head_branch"`
}

// jobJSON renders j; the caller holds s.mu.
func (s *Server) jobJSON(j *jobRecord) jobJSON {
	full := j.Owner + "/" + j.Repo
	if r := s.repos[key(j.Owner, j.Repo)]; r != nil {
		full = r.fullName() // the spelling the repository was created with
	}
	api := s.apiURL() + "/repos/" + full
	id := strconv.FormatInt(j.ID, 10)
	run := strconv.FormatInt(j.RunID, 10)
	started := j.startedAt
	if started.IsZero() {
		started = j.createdAt // GitHub reports a queued job as started when it was created
	}
	out := jobJSON{
		ID:           j.ID,
		RunID:        j.RunID,
		RunURL:       api + "/actions/runs/" + run,
		RunAttempt:   j.RunAttempt,
		NodeID:       nodeID("CheckRun", j.ID),
		HeadSHA:      j.headSHA,
		URL:          api + "/actions/jobs/" + id,
		HTMLURL:      s.webURL() + "/" + full + "/actions/runs/" + run + "/job/" + id,
		Status:       j.Status,
		CreatedAt:    timestamp(j.createdAt),
		StartedAt:    timestamp(started),
		Name:         j.Name,
		Steps:        []struct{}{},
		CheckRunURL:  api + "/check-runs/" + id,
		Labels:       slices.Clone(j.Labels),
		WorkflowName: ptr("CI"),
		HeadBranch:   ptr("main"),
	}
	if out.Labels == nil {
		out.Labels = []string{}
	}
	if j.Conclusion != "" {
		out.Conclusion = ptr(j.Conclusion)
	}
	if !j.completedAt.IsZero() {
		out.CompletedAt = ptr(timestamp(j.completedAt))
	}
	if j.RunnerName != "" {
		out.RunnerID, out.RunnerName = ptr(j.RunnerID), ptr(j.RunnerName)
		out.RunnerGroupID, out.RunnerGroupName = ptr(int64(defaultRunnerGroupID)), ptr("Default")
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// asOf returns the job as a webhook for action would show it, so that a test may send an event
// of a state the job has already left (a late or repeated delivery). It refuses the states that
// never happened: in_progress without a runner, completed without a conclusion.
func (j jobRecord) asOf(action string) (jobRecord, error) {
	switch action {
	case statusQueued, "waiting":
		j.RunnerName, j.RunnerID, j.Conclusion = "", 0, ""
		j.startedAt, j.completedAt = time.Time{}, time.Time{}
	case statusInProgress:
		if j.RunnerName == "" {
			return j, fmt.Errorf("job %d has no runner yet: AssignJob first", j.ID)
		}
		j.Conclusion, j.completedAt = "", time.Time{}
	case statusCompleted:
		if j.Conclusion == "" {
			return j, fmt.Errorf("job %d has no conclusion yet: CompleteJob first", j.ID)
		}
	default:
		return j, fmt.Errorf("workflow_job action %q is not queued, waiting, in_progress or completed", action)
	}
	j.Status = action
	return j, nil
}

func (s *Server) getJob(r *http.Request) reply {
	id, ok := pathID(r, "job_id")
	if !ok {
		return notFound()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil || !strings.EqualFold(j.Owner, r.PathValue("owner")) || !strings.EqualFold(j.Repo, r.PathValue("repo")) {
		return notFound()
	}
	return okReply(s.jobJSON(j))
}
