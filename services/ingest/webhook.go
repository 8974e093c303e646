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
	// AllowPublic lets jobs of public repositories through. main sets it from ALLOW_PUBLIC_REPOS:
	// off by default on github.com, where a self-hosted runner on a public repository runs code
	// from anyone who can open a pull request; on by default on GHES, where public means visible
	// to the instance's own users.
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
//
// A job that is not ours (runs-on: self-hosted in the same org) can take one of our runners. Its
// in_progress and completed name our runner, and are forwarded whatever the job's labels: they
// are how the provisioner learns its runner was taken, and launches again for the job it was
// meant for. The owner and repository allow-lists and the public-repository rule do not apply to
// them: those protect launching, and a job of a repository we do not serve running on our runner
// is exactly what the provisioner must hear about. An installation and a known owner type are
// still required, as for every message. A queued job without a spotrunner label stays ignored:
// no runner of ours is involved yet.
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
	// GitHub gives every job at least one label; a job without any would not make a valid message.
	onOurRunner := ev.Action != queue.ActionQueued && len(job.Labels) > 0 &&
		job.RunnerName != nil && isOurRunner(*job.RunnerName)
	if _, ours, _ := labels.Find(job.Labels); !ours && !onOurRunner {
		return decision{reason: "no spotrunner label"}, nil
	}
	owner, name := strings.ToLower(repo.Owner.Login), strings.ToLower(repo.Name)
	switch {
	case onOurRunner:
		// The filters protect launching; this job already runs on our runner (see above).
	case len(f.Owners) > 0 && !f.Owners[owner]:
		return decision{reason: "owner not allowed"}, nil
	case len(f.Repos) > 0 && !f.Repos[owner+"/"+name]:
		return decision{reason: "repository not allowed"}, nil
	case !repo.Private && !f.AllowPublic:
		return decision{reason: "public repository"}, nil
	}
	switch {
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

// isOurRunner reports whether a runner name is one the provisioner registers.
func isOurRunner(name string) bool {
	_, ok := queue.InstanceOfRunner(name)
	return ok
}
