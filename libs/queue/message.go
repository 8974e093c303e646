// Package queue is the contract between ingest and the provisioner: the job-event message, its
// FIFO group and deduplication ids, and the SQS publisher.
//
// One message per workflow_job event (queued, in_progress, completed) of a spotrunner job. The
// group id is the job id, so one job's events stay ordered while different jobs are processed in
// parallel; the deduplication id is host + job id + action, so a redelivery within SQS's
// five-minute window vanishes (later duplicates are no-ops in the state table).
package queue

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Version is the message schema version; a consumer rejects versions it does not know.
const Version = 1

// Actions forwarded from workflow_job webhooks.
const (
	ActionQueued     = "queued"
	ActionInProgress = "in_progress"
	ActionCompleted  = "completed"
)

// Message is one workflow_job event of a spotrunner job.
type Message struct {
	Version        int       `json:"version"`
	Action         string    `json:"action"`
	DeliveryID     string    `json:"deliveryId"`
	Host           string    `json:"host"`
	InstallationID int64     `json:"installationId"`
	Owner          string    `json:"owner"`
	OwnerType      string    `json:"ownerType"` // "Organization" or "User": org-level or repo-level runners
	Repo           string    `json:"repo"`
	JobID          int64     `json:"jobId"`
	JobName        string    `json:"jobName,omitempty"`
	RunID          int64     `json:"runId"`
	RunAttempt     int64     `json:"runAttempt"`
	Labels         []string  `json:"labels"`
	RunnerName     string    `json:"runnerName,omitempty"` // in_progress and completed only
	RunnerID       int64     `json:"runnerId,omitempty"`
	Conclusion     string    `json:"conclusion,omitempty"` // completed only, e.g. "success", "cancelled"
	ReceivedAt     time.Time `json:"receivedAt"`
	// Attempt is set by the provisioner when it relaunches for a job whose runner another job
	// took; 0 for events from GitHub.
	Attempt int `json:"attempt,omitempty"`
	// Retry and NotBefore are set by the provisioner when a queued job has to wait (a full cap, no
	// AMI yet, no capacity): it acknowledges the event and queues this retry, in a group of its
	// own, so the job's later events are not held up behind the wait.
	Retry     int       `json:"retry,omitempty"`
	NotBefore time.Time `json:"notBefore,omitzero"`
}

// ErrMalformed means a message body is not a valid Message; it is never worth a retry.
var ErrMalformed = errors.New("malformed message")

// Validate checks what a consumer relies on.
func (m Message) Validate() error {
	switch {
	case m.Version != Version:
		return fmt.Errorf("%w: version %d, want %d", ErrMalformed, m.Version, Version)
	case m.Action != ActionQueued && m.Action != ActionInProgress && m.Action != ActionCompleted:
		return fmt.Errorf("%w: action %q", ErrMalformed, m.Action)
	case m.Host == "" || m.JobID <= 0 || m.InstallationID <= 0 || m.Owner == "" || m.Repo == "":
		return fmt.Errorf("%w: host, job id, installation id, owner and repo are required", ErrMalformed)
	case m.OwnerType != "Organization" && m.OwnerType != "User":
		return fmt.Errorf("%w: owner type %q", ErrMalformed, m.OwnerType)
	case len(m.Labels) == 0:
		return fmt.Errorf("%w: no labels", ErrMalformed)
	}
	return nil
}

// Decode parses and validates a message body.
func Decode(body []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := m.Validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

// GroupID is the FIFO message group: the job id, or for a retry the job id + "-retry".
func (m Message) GroupID() string {
	id := strconv.FormatInt(m.JobID, 10)
	if m.Retry > 0 {
		id += "-retry"
	}
	return id
}

// DedupID is the FIFO deduplication id: host + job id + action (+ relaunch attempt), hashed when it would exceed SQS's
// 128 characters (a long GHES host name).
func (m Message) DedupID() string {
	id := m.Host + "/" + strconv.FormatInt(m.JobID, 10) + "/" + m.Action
	if m.Attempt > 0 {
		id += "/" + strconv.Itoa(m.Attempt)
	}
	if m.Retry > 0 {
		id += "/r" + strconv.Itoa(m.Retry)
	}
	if len(id) <= 128 {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// runnerPrefix starts the GitHub name of every runner Spot Runner registers: "spotrunner-" and
// the EC2 instance id ("spotrunner-i-0abc...").
const runnerPrefix = "spotrunner-i-"

// RunnerName is the name a runner instance registers with on GitHub.
func RunnerName(instanceID string) string { return "spotrunner-" + instanceID }

// InstanceOfRunner is RunnerName's inverse: the instance of one of our runners; ok is false
// for a runner that is not ours.
func InstanceOfRunner(name string) (instanceID string, ok bool) {
	if len(name) <= len(runnerPrefix) || !strings.HasPrefix(name, runnerPrefix) {
		return "", false
	}
	return name[len("spotrunner-"):], true
}
