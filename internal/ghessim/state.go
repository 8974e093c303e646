package ghessim

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Job is a workflow job as tests set it up and read it back.
type Job struct {
	ID, RunID, RunAttempt int64
	Owner, Repo, Name     string
	Labels                []string
	// Status is "queued", "in_progress" or "completed"; AddJob defaults it to "queued".
	Status string
	// Conclusion is set once the job is completed ("success", "failure", "cancelled", ...).
	Conclusion string
	// RunnerName and RunnerID name the runner that took the job, once one did.
	RunnerName string
	RunnerID   int64
}

// Runner is a self-hosted runner, at org level (Repo empty) or repo level.
type Runner struct {
	ID                int64
	Name, Owner, Repo string
	Labels            []string
	// Status is "offline" until the runner connects (ConnectRunner or AssignJob), then "online",
	// and "offline" again once its process exited (DELETE /_sim/runners/{name}, play.go).
	Status string
	Busy   bool
	// JITConfig is the encoded_jit_config GitHub returned when the runner was created.
	JITConfig string
}

// Job states and conclusions GitHub uses.
const (
	statusQueued     = "queued"
	statusInProgress = "in_progress"
	statusCompleted  = "completed"
)

var conclusions = []string{"success", "failure", "neutral", "cancelled", "skipped", "timed_out", "action_required"}

// account is a user or organization. Logins are case-insensitive on GitHub, so maps are keyed by
// the lower-cased login and the account keeps the spelling it was added with.
type account struct {
	id    int64
	login string
	typ   string // "Organization" or "User"
}

type installation struct {
	id        int64
	account   *account
	createdAt time.Time
}

type repo struct {
	id      int64
	owner   *account
	name    string
	private bool
}

func (r *repo) fullName() string { return r.owner.login + "/" + r.name }

// jobRecord is a Job with the timestamps GitHub reports.
type jobRecord struct {
	Job
	headSHA                           string
	createdAt, startedAt, completedAt time.Time
}

// runnerRecord is a Runner with what only the simulator knows.
type runnerRecord struct {
	Runner
	groupID    int64
	workFolder string
	// clientID is the credential inside the JIT config; ConnectRunner checks it, so a config
	// cannot be forged from a runner's id and name alone.
	clientID  string
	connected bool
	// exited is set when the runner process went away after connecting (its instance shut
	// down): the runner stays registered, offline, its config spent, and gets no job.
	exited bool
}

func (r *runnerRecord) public() Runner {
	out := r.Runner
	out.Labels = slices.Clone(r.Labels)
	out.Status = "offline"
	if r.connected && !r.exited {
		out.Status = "online"
	}
	return out
}

func key(parts ...string) string { return strings.ToLower(strings.Join(parts, "/")) }

// id returns the next id; the caller holds s.mu.
func (s *Server) id() int64 {
	s.nextID++
	return s.nextID
}

// accountLocked returns the account for login, creating it as a User until an installation
// says otherwise; the caller holds s.mu.
func (s *Server) accountLocked(login string) *account {
	a, ok := s.accounts[key(login)]
	if !ok {
		a = &account{id: s.id(), login: login, typ: "User"}
		s.accounts[key(login)] = a
	}
	return a
}

// AddInstallation installs the app on an account, accountType "Organization" or "User". Like the
// other set-up methods it panics on input no test should pass.
func (s *Server) AddInstallation(id int64, accountLogin string, accountType string) {
	if accountType != "Organization" && accountType != "User" {
		panic(fmt.Sprintf("ghessim: AddInstallation(%d, %q): account type %q is neither Organization nor User", id, accountLogin, accountType))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountLocked(accountLogin)
	a.typ = accountType
	s.installations[id] = &installation{id: id, account: a, createdAt: s.now().UTC()}
}

// AddRepo creates a repository. Repo routes answer 404 for repositories that were never added.
func (s *Server) AddRepo(owner, name string, private bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addRepoLocked(owner, name, private)
}

func (s *Server) addRepoLocked(owner, name string, private bool) *repo {
	if r, ok := s.repos[key(owner, name)]; ok {
		r.private = private
		return r
	}
	r := &repo{id: s.id(), owner: s.accountLocked(owner), name: name, private: private}
	s.repos[key(owner, name)] = r
	return r
}

// AddJob creates or replaces a workflow job, adding its repository (public) if it is not known
// yet. Status defaults to "queued" and RunAttempt to 1.
func (s *Server) AddJob(j Job) {
	if j.ID == 0 || j.Owner == "" || j.Repo == "" {
		panic(fmt.Sprintf("ghessim: AddJob: a job needs an ID, an Owner and a Repo: %+v", j))
	}
	if j.Status == "" {
		j.Status = statusQueued
	}
	if j.RunAttempt == 0 {
		j.RunAttempt = 1
	}
	j.Labels = slices.Clone(j.Labels)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.repos[key(j.Owner, j.Repo)]; !ok {
		s.addRepoLocked(j.Owner, j.Repo, false)
	}
	now := s.now().UTC()
	rec := &jobRecord{Job: j, headSHA: randomHex(20), createdAt: now}
	if j.Status != statusQueued {
		rec.startedAt = now
	}
	if j.Status == statusCompleted {
		rec.completedAt = now
	}
	s.jobs[j.ID] = rec
}

// Job returns the job with that id.
func (s *Server) Job(id int64) (Job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return Job{}, false
	}
	out := j.Job
	out.Labels = slices.Clone(j.Labels)
	return out, true
}

// Runners returns every runner, org- and repo-level, by id.
func (s *Server) Runners() []Runner {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Runner, 0, len(s.runners))
	for _, r := range s.sortedRunners() {
		out = append(out, r.public())
	}
	return out
}

// sortedRunners returns the runners by id, the order GitHub lists them in; the caller holds s.mu.
func (s *Server) sortedRunners() []*runnerRecord {
	out := slices.Collect(maps.Values(s.runners))
	slices.SortFunc(out, func(a, b *runnerRecord) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// AssignJob makes a runner take a queued job, as GitHub does when a runner whose labels fit asks
// for work: the job goes in_progress on that runner, and the runner is online and busy. The runner
// must be registered for the job's org or repo, be idle, and carry every label of the job
// (case-insensitively); otherwise GitHub would never have given it the job.
func (s *Server) AssignJob(jobID int64, runnerName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[jobID]
	if !ok {
		return fmt.Errorf("assign job %d: no such job", jobID)
	}
	if j.Status != statusQueued {
		return fmt.Errorf("assign job %d: job is %s, not queued", jobID, j.Status)
	}
	r := s.runnerFor(j.Owner, j.Repo, runnerName)
	if r == nil {
		return fmt.Errorf("assign job %d: no runner %q for %s/%s or its org", jobID, runnerName, j.Owner, j.Repo)
	}
	if r.Busy {
		return fmt.Errorf("assign job %d: runner %q is busy", jobID, runnerName)
	}
	if missing := missingLabels(j.Labels, r.Labels); len(missing) > 0 {
		return fmt.Errorf("assign job %d: runner %q lacks the job's labels %q", jobID, runnerName, missing)
	}
	s.assignLocked(j, r)
	return nil
}

// assignLocked gives job j to runner r, which may take it; the caller holds s.mu.
func (s *Server) assignLocked(j *jobRecord, r *runnerRecord) {
	r.connected, r.Busy = true, true
	j.Status, j.RunnerName, j.RunnerID = statusInProgress, r.Name, r.ID
	j.startedAt = s.now().UTC()
	s.changedLocked()
}

// runnerFor finds a runner by name at the repo's level or its owner's; the caller holds s.mu.
func (s *Server) runnerFor(owner, repoName, name string) *runnerRecord {
	for _, r := range s.runners {
		if strings.EqualFold(r.Name, name) && strings.EqualFold(r.Owner, owner) &&
			(r.Repo == "" || strings.EqualFold(r.Repo, repoName)) {
			return r
		}
	}
	return nil
}

func missingLabels(want, have []string) []string {
	var missing []string
	for _, w := range want {
		if !containsFold(have, w) {
			missing = append(missing, w)
		}
	}
	return missing
}

// CompleteJob finishes a job with a conclusion. A job still queued may complete too (a cancelled
// run). The job's runner, if any, is removed: JIT runners are ephemeral and GitHub deletes them
// once their one job is done.
func (s *Server) CompleteJob(jobID int64, conclusion string) error {
	if !slices.Contains(conclusions, conclusion) {
		return fmt.Errorf("complete job %d: conclusion %q is not one of %q", jobID, conclusion, conclusions)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[jobID]
	if !ok {
		return fmt.Errorf("complete job %d: no such job", jobID)
	}
	if j.Status == statusCompleted {
		return fmt.Errorf("complete job %d: already completed", jobID)
	}
	now := s.now().UTC()
	if j.startedAt.IsZero() {
		j.startedAt = now
	}
	j.Status, j.Conclusion, j.completedAt = statusCompleted, conclusion, now
	delete(s.runners, j.RunnerID)
	s.changedLocked()
	return nil
}
