package main

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/spotrunner/spotrunner/libs/labels"
	"github.com/spotrunner/spotrunner/libs/queue"
)

// workflowJobEvent is the part of a workflow_job webhook payload that ingest reads.
type workflowJobEvent struct {
	Action      string `json:"action"`
	WorkflowJob *struct {
		ID         int64    `json:"id"`
		RunID      int64    `json:"run_id"`
		RunAttempt int64    `json:"run_attempt"`
		Name       string   `json:"name"`
		Labels     []string `json:"labels"`
		RunnerID   *int64   `json:"runner_id"`
		RunnerName *string  `json:"runner_name"`
		Conclusion *string  `json:"conclusion"`
	} `json:"workflow_job"`
	Repository *struct {
		Name    string `json:"name"`
		Private bool   `json:"private"`
		Owner   struct {
			Login string `json:"login"`
			Type  string `json:"type"`
		} `json:"owner"`
	} `json:"repository"`
	Installation *struct {
		ID int64 `json:"id"`
	} `json:"installation"`
}

// payloadError is a body that is not a workflow_job event we can use; its text is safe to
// return to the sender.
type payloadError string

func (e payloadError) Error() string { return string(e) }

const (
	errNotWorkflowJob = payloadError("not a workflow_job payload")
	errNoInstallation = payloadError("no installation: deliveries must come from the GitHub App")
	errOwnerType      = payloadError("repository owner is neither an organization nor a user")
)

// Filter decides which repositories may use the runners.
type Filter struct {
	// Owners, when not empty, lists the only owners (orgs or users) served; lowercase.
	Owners map[string]bool
	// Repos, when not empty, lists the only repositories served, "owner/repo"; lowercase.
	Repos map[string]bool
	// AllowPublic lets jobs of public repositories through. Off by default: a self-hosted runner
	// on a public repository runs code from anyone who can open a pull request.
	AllowPublic bool
}

// decision is what ingest does with one workflow_job delivery.
type decision struct {
	forward bool
	reason  string // why it was ignored
	msg     queue.Message
}

// decide parses a workflow_job payload and builds its message, or says why it is ignored.
// A malformed spotrunner/* label is forwarded all the same: the provisioner records the job as
// rejected with the reason, where the status document and the CLI show it.
func decide(body []byte, deliveryID, host string, f Filter, now time.Time) (decision, error) {
	var ev workflowJobEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return decision{}, errNotWorkflowJob
	}
	job, repo := ev.WorkflowJob, ev.Repository
	if job == nil || repo == nil || job.ID <= 0 || repo.Name == "" || repo.Owner.Login == "" || ev.Action == "" {
		return decision{}, errNotWorkflowJob
	}
	switch ev.Action {
	case queue.ActionQueued, queue.ActionInProgress, queue.ActionCompleted:
	default:
		return decision{reason: "action " + ev.Action + " is not used"}, nil
	}
	if _, ours, _ := labels.Find(job.Labels); !ours {
		return decision{reason: "no spotrunner label"}, nil
	}
	owner, name := strings.ToLower(repo.Owner.Login), strings.ToLower(repo.Name)
	switch {
	case len(f.Owners) > 0 && !f.Owners[owner]:
		return decision{reason: "owner not allowed"}, nil
	case len(f.Repos) > 0 && !f.Repos[owner+"/"+name]:
		return decision{reason: "repository not allowed"}, nil
	case !repo.Private && !f.AllowPublic:
		return decision{reason: "public repository"}, nil
	case ev.Installation == nil || ev.Installation.ID <= 0:
		// Only an App's own deliveries carry it; without it no token can be minted.
		return decision{}, errNoInstallation
	case repo.Owner.Type != "Organization" && repo.Owner.Type != "User":
		return decision{}, errOwnerType
	}
	m := queue.Message{
		Version:        queue.Version,
		Action:         ev.Action,
		DeliveryID:     deliveryID,
		Host:           host,
		InstallationID: ev.Installation.ID,
		Owner:          repo.Owner.Login,
		OwnerType:      repo.Owner.Type,
		Repo:           repo.Name,
		JobID:          job.ID,
		JobName:        job.Name,
		RunID:          job.RunID,
		RunAttempt:     job.RunAttempt,
		Labels:         job.Labels,
		ReceivedAt:     now.UTC(),
	}
	if job.RunnerName != nil {
		m.RunnerName = *job.RunnerName
	}
	if job.RunnerID != nil {
		m.RunnerID = *job.RunnerID
	}
	if job.Conclusion != nil {
		m.Conclusion = *job.Conclusion
	}
	return decision{forward: true, msg: m}, nil
}
