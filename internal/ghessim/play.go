package ghessim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Playing GitHub, for an end-to-end run of the whole system. Once Play is called the simulator
// does what GitHub does around a job:
//
//  1. QueueJob: the job is queued and the queued workflow_job webhook is sent to the app's
//     webhook URL. GitHub neither retries a failed delivery nor redelivers it by itself; it
//     stays failed in the hook deliveries until someone redelivers it.
//  2. A runner comes online (POST /_sim/runners, what `run.sh --jitconfig` does).
//  3. Whenever a job is queued or a runner comes online, queued jobs are given to idle runners:
//     the oldest job first, to any runner whose labels include the job's (case-insensitively;
//     a job with fewer labels than the runner fits, and so does a job the system did not
//     launch the runner for) and which may serve the job's repository (an org runner serves the
//     org's repositories, a repo runner its repository). A JIT runner is ephemeral: it gets one
//     job, ever.
//  4. The job goes in_progress on that runner (webhook), runs for JobDuration, completes with
//     conclusion success (webhook), and GitHub deletes the ephemeral runner.
//
// CancelJob, Outage and the DELETE /_sim endpoint (a runner whose instance went away) are the
// other turns a run can take.

const (
	// simPrefix is where the endpoints for the runner stand-in live, outside /api/v3: they are
	// the simulator's, not GitHub's REST API, and the OpenAPI conformance test ignores them.
	simPrefix = "/_sim"
	// maxWait bounds a long-poll; GitHub's broker holds a runner's poll for about 50 seconds.
	maxWait = 60 * time.Second
	// pollInterval is how often a long-poll looks again for changes nothing announces (a runner
	// deleted through the API).
	pollInterval = 100 * time.Millisecond
	// maxConfigSize bounds the body of POST /_sim/runners; a JIT config is about 4.4 KB.
	maxConfigSize = 64 << 10
)

// PlayOptions configure Play.
type PlayOptions struct {
	// WebhookURL is the app's webhook URL, where the workflow_job webhooks go (the front door).
	// Required; it must be on loopback.
	WebhookURL string
	// JobDuration is how long a job runs on its runner before it completes. Optional, default
	// 0: completed right after in_progress.
	JobDuration time.Duration
	// Log gets one line per event: job queued, webhook delivered (with the receiver's status)
	// or not, runner online, job assigned, job completed, runner removed or offline, outage.
	// Optional. It is never called with the server's lock held, nor once Close returned.
	Log func(format string, args ...any)
}

// player is GitHub's behaviour. opts, ctx and cancel are fixed by Play; the rest is guarded
// by s.mu.
type player struct {
	opts PlayOptions
	// ctx ends with Close: running jobs stop where they are, unannounced.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the running jobs (runJob); Add happens under s.mu while not stopped.
	wg      sync.WaitGroup
	stopped bool
	// queue holds the jobs waiting for a runner, oldest first.
	queue []int64
	// served holds the runners given a job: a JIT runner gets one, ever.
	served map[int64]bool
}

func (p *player) logf(format string, args ...any) {
	if p != nil && p.opts.Log != nil && p.ctx.Err() == nil {
		p.opts.Log(format, args...)
	}
}

// Play turns on GitHub's behaviour (see the comment at the top of play.go). It panics on a
// missing or non-loopback WebhookURL, a negative JobDuration, a second call, or a call after
// Close.
func (s *Server) Play(opts PlayOptions) {
	if err := loopbackOnly(opts.WebhookURL); err != nil || opts.JobDuration < 0 {
		panic(fmt.Sprintf("ghessim: Play: needs a webhook URL on loopback and a JobDuration >= 0 (URL: %v, JobDuration %s)", err, opts.JobDuration))
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &player{opts: opts, ctx: ctx, cancel: cancel, served: map[int64]bool{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		panic("ghessim: Play after Close")
	default:
	}
	if s.play != nil {
		panic("ghessim: Play called twice")
	}
	s.play = p
}

// Close stops playing GitHub: running jobs stop where they are, unannounced, and pending
// long-polls answer 503. It waits for Play's goroutines. Start and StartTLS call it at the end
// of the test; the owner of a server made with New calls it before closing its HTTP server.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
	s.mu.Lock()
	p := s.play
	if p != nil {
		p.stopped = true
	}
	s.mu.Unlock()
	if p != nil {
		p.cancel()
		p.wg.Wait()
	}
}

// playing returns the player, or why there is none.
func (s *Server) playing() (*player, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.play == nil:
		return nil, errors.New("the simulator is not playing GitHub: call Play first")
	case s.play.stopped:
		return nil, errors.New("the simulator is closed")
	}
	return s.play, nil
}

// QueueJob queues a new job (as AddJob; Status must be empty or "queued") and sends the queued
// workflow_job webhook to the webhook URL. A receiver that answers non-2xx or cannot be reached
// makes a failed delivery, recorded and logged and not retried, as on GitHub; that is not an
// error. The job is then given to an idle runner that fits, if there is one. It returns an
// error when Play was not called, the job id exists already, or the app is not installed on the
// job's owner (GitHub would send no webhook).
func (s *Server) QueueJob(ctx context.Context, j Job) error {
	return s.queueJob(ctx, j, true)
}

// QueueJobUndelivered is QueueJob with the receiver unreachable: the queued webhook is recorded
// as a failed delivery (502, "failed to connect") and never sent, so that only a redelivery
// (POST /app/hook/deliveries/{id}/attempts, which does send it to the webhook URL) tells the
// system about the job.
func (s *Server) QueueJobUndelivered(ctx context.Context, j Job) error {
	return s.queueJob(ctx, j, false)
}

func (s *Server) queueJob(ctx context.Context, j Job, reachable bool) error {
	p, err := s.playing()
	if err != nil {
		return fmt.Errorf("queue job %d: %w", j.ID, err)
	}
	if j.Status != "" && j.Status != statusQueued {
		return fmt.Errorf("queue job %d: status %q: a job starts queued", j.ID, j.Status)
	}
	s.mu.Lock()
	_, exists := s.jobs[j.ID]
	s.mu.Unlock()
	if exists {
		return fmt.Errorf("queue job %d: the job exists already (GitHub gives a re-run new job ids)", j.ID)
	}
	s.AddJob(j)
	d, err := s.workflowJobDelivery(p.opts.WebhookURL, j.ID, statusQueued)
	if err != nil {
		s.mu.Lock()
		delete(s.jobs, j.ID)
		s.mu.Unlock()
		return fmt.Errorf("queue job %d: %w", j.ID, err)
	}
	p.logf("job %d queued in %s/%s, labels %q", j.ID, j.Owner, j.Repo, j.Labels)
	s.announce(ctx, p, j.ID, d, reachable)

	// The job waits for a runner only now, so that its in_progress webhook cannot overtake
	// its queued one.
	s.mu.Lock()
	defer s.mu.Unlock()
	p.queue = append(p.queue, j.ID)
	s.dispatchLocked()
	return nil
}

// CancelJob cancels a job, as a user cancelling its workflow run: the job completes with
// conclusion "cancelled" and the completed webhook is sent. A job still queued never gets a
// runner; a job already running stops, and its ephemeral runner is removed.
func (s *Server) CancelJob(ctx context.Context, jobID int64) error {
	p, err := s.playing()
	if err != nil {
		return fmt.Errorf("cancel job %d: %w", jobID, err)
	}
	if err := s.CompleteJob(jobID, "cancelled"); err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	if j, _ := s.Job(jobID); j.RunnerName != "" {
		p.logf("job %d cancelled while running on runner %s (id %d); the runner is removed", jobID, j.RunnerName, j.RunnerID)
	} else {
		p.logf("job %d cancelled before it started", jobID)
	}
	s.announceJob(ctx, p, jobID, statusCompleted)
	return nil
}

// Outage makes every /api/v3 request answer 503 with GitHub's error body for d from now, as
// a GitHub that is down. Webhooks are still sent, and the /_sim endpoints still serve. A later
// call replaces the end: Outage(0) ends an outage.
func (s *Server) Outage(d time.Duration) {
	s.outageUntil.Store(time.Now().Add(d).UnixNano())
	s.mu.Lock()
	p := s.play
	s.mu.Unlock()
	p.logf("outage: every /api/v3 request answers 503 for %s", d)
}

// dispatchLocked gives queued jobs to idle runners, oldest job first, each to the first runner
// by id that may take it, and starts each pairing running (runJob). The caller holds s.mu.
func (s *Server) dispatchLocked() {
	p := s.play
	if p == nil || p.stopped {
		return
	}
	runners := s.sortedRunners()
	waiting := p.queue[:0]
	for _, id := range p.queue {
		j := s.jobs[id]
		if j == nil || j.Status != statusQueued {
			continue // cancelled, or given a runner by AssignJob
		}
		i := slices.IndexFunc(runners, func(r *runnerRecord) bool { return p.mayTake(r, j) })
		if i < 0 {
			waiting = append(waiting, id)
			continue
		}
		r := runners[i]
		s.assignLocked(j, r)
		p.served[r.ID] = true
		p.wg.Add(1)
		go s.runJob(p, id, r.Name, r.ID)
	}
	p.queue = waiting
}

// mayTake reports whether GitHub would give job j to runner r now.
func (p *player) mayTake(r *runnerRecord, j *jobRecord) bool {
	return r.connected && !r.exited && !r.Busy && !p.served[r.ID] &&
		strings.EqualFold(r.Owner, j.Owner) && (r.Repo == "" || strings.EqualFold(r.Repo, j.Repo)) &&
		len(missingLabels(j.Labels, r.Labels)) == 0
}

// runJob is a job on its runner, once assigned: in_progress announced, JobDuration of work,
// then completed (success) and announced, the runner removed by CompleteJob. A job cancelled
// or ended while it ran stops there: whoever ended it announced it.
func (s *Server) runJob(p *player, jobID int64, runner string, runnerID int64) {
	defer p.wg.Done()
	p.logf("job %d assigned to runner %s (id %d)", jobID, runner, runnerID)
	s.announceJob(p.ctx, p, jobID, statusInProgress)
	t := time.NewTimer(p.opts.JobDuration)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.ctx.Done():
		return
	}
	if err := s.CompleteJob(jobID, "success"); err != nil {
		return
	}
	p.logf("job %d completed: success", jobID)
	p.logf("runner %s (id %d) removed: GitHub deletes an ephemeral runner after its job", runner, runnerID)
	s.announceJob(p.ctx, p, jobID, statusCompleted)
}

// announceJob sends the workflow_job webhook of action for the job to the webhook URL.
func (s *Server) announceJob(ctx context.Context, p *player, jobID int64, action string) {
	d, err := s.workflowJobDelivery(p.opts.WebhookURL, jobID, action)
	if err != nil {
		p.logf("job %d: no workflow_job.%s webhook: %v", jobID, action, err)
		return
	}
	s.announce(ctx, p, jobID, d, true)
}

// announce delivers d, or with reachable false records it as failed without sending it, and
// logs the outcome.
func (s *Server) announce(ctx context.Context, p *player, jobID int64, d *delivery, reachable bool) {
	if !reachable {
		// A request whose context is already cancelled fails before any connection is made:
		// deliver records it as GitHub records an unreachable receiver, and nothing is sent.
		dead, cancel := context.WithCancel(ctx)
		cancel()
		_, _ = s.deliver(dead, d)
		p.logf("job %d: webhook workflow_job.%s not delivered: receiver unreachable (delivery %s recorded as failed)", jobID, d.action, d.guid)
		return
	}
	status, err := s.deliver(ctx, d)
	switch {
	case err != nil:
		p.logf("job %d: webhook workflow_job.%s not delivered (delivery %s recorded as failed): %v", jobID, d.action, d.guid, err)
	case status < 200 || status > 299:
		p.logf("job %d: webhook workflow_job.%s refused: %d (delivery %s recorded as failed)", jobID, d.action, status, d.guid)
	default:
		p.logf("job %d: webhook workflow_job.%s delivered: %d (delivery %s)", jobID, d.action, status, d.guid)
	}
}

// changedLocked wakes the long-polls; the caller holds s.mu.
func (s *Server) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// The /_sim endpoints stand in for the Actions service that a runner talks to. A runner
// stand-in (run.sh on the instance simulator) connects with its JIT config, long-polls for its
// job, then for the job's end; or says it went away.

func (s *Server) simRoutes() *http.ServeMux {
	mux := http.NewServeMux()
	for pattern, h := range map[string]handlerFunc{
		"POST " + simPrefix + "/runners":            s.simConnect,
		"GET " + simPrefix + "/runners/{name}/job":  s.simJob,
		"GET " + simPrefix + "/runners/{name}/done": s.simDone,
		"DELETE " + simPrefix + "/runners/{name}":   s.simExit,
	} {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { writeReply(w, h(r)) })
	}
	mux.HandleFunc(simPrefix+"/", func(w http.ResponseWriter, _ *http.Request) {
		writeReply(w, simError(http.StatusNotFound, "no such endpoint"))
	})
	return mux
}

// simMessage is the body of every /_sim error.
type simMessage struct {
	Message string `json:"message"`
}

func simError(status int, msg string) reply { return reply{status: status, body: simMessage{msg}} }

type simRunnerJSON struct {
	ID     int64    `json:"id"`
	Name   string   `json:"name"`
	Labels []string `json:"labels"`
}

type simJobJSON struct {
	ID           int64    `json:"id"`
	RunID        int64    `json:"run_id"`
	Name         string   `json:"name"`
	WorkflowName string   `json:"workflow_name"`
	Repository   string   `json:"repository"`
	Labels       []string `json:"labels"`
}

type simDoneJSON struct {
	ID         int64  `json:"id"`
	Conclusion string `json:"conclusion"`
}

// simConnect is POST /_sim/runners: the body is the encoded JIT config, as run.sh --jitconfig
// gets it. The runner comes online and may be given a job at once.
func (s *Server) simConnect(r *http.Request) reply {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxConfigSize+1))
	if err != nil || len(body) > maxConfigSize {
		return simError(http.StatusBadRequest, "the body must be an encoded JIT config")
	}
	config := strings.TrimSpace(string(body))
	rn, err := s.ConnectRunner(config)
	if err != nil {
		return s.connectRefusal(config)
	}
	s.mu.Lock()
	p := s.play
	s.mu.Unlock()
	p.logf("runner %s (id %d) online, labels %q", rn.Name, rn.ID, rn.Labels)
	s.mu.Lock()
	s.dispatchLocked()
	s.mu.Unlock()
	return reply{status: http.StatusCreated, body: simRunnerJSON{ID: rn.ID, Name: rn.Name, Labels: rn.Labels}}
}

// connectRefusal says why ConnectRunner refused config: 404 when its runner does not exist
// (deleted, removed after its job, or never issued here), 409 when the config was used already,
// 400 for anything else (not a JIT config, a key GitHub did not issue with it).
func (s *Server) connectRefusal(config string) reply {
	var files map[string]string
	var settings runnerSettings
	var creds runnerCredentials
	if decodeB64JSON(config, &files) != nil || decodeB64JSON(files[".runner"], &settings) != nil ||
		decodeB64JSON(files[".credentials"], &creds) != nil {
		return simError(http.StatusBadRequest, "the body is not an encoded JIT config")
	}
	id, _ := strconv.ParseInt(string(settings.AgentID), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	rr := s.runners[id]
	switch {
	case rr == nil || rr.clientID != creds.Data.ClientID:
		return simError(http.StatusNotFound, "no such runner: deleted, removed after its job, or the config is not one this GitHub issued")
	case rr.connected:
		return simError(http.StatusConflict, "JIT config already used: a JIT runner registers once")
	}
	return simError(http.StatusBadRequest, "the JIT config does not carry the key GitHub issued with it")
}

// simJob is GET /_sim/runners/{name}/job?wait=SECONDS: the job GitHub gave the runner.
func (s *Server) simJob(r *http.Request) reply {
	name := r.PathValue("name")
	return s.await(r, func() (reply, bool) {
		live, j := s.runnerNamed(name)
		switch {
		case j != nil:
			jj := s.jobJSON(j)
			return okReply(simJobJSON{ID: j.ID, RunID: j.RunID, Name: j.Name, WorkflowName: *jj.WorkflowName,
				Repository: j.Owner + "/" + j.Repo, Labels: jj.Labels}), true
		case live == nil || live.exited:
			return simError(http.StatusNotFound, fmt.Sprintf("no runner %q: never online, deleted, or gone offline", name)), true
		}
		return reply{}, false
	})
}

// simDone is GET /_sim/runners/{name}/done?wait=SECONDS: the conclusion of the runner's job.
func (s *Server) simDone(r *http.Request) reply {
	name := r.PathValue("name")
	return s.await(r, func() (reply, bool) {
		live, j := s.runnerNamed(name)
		switch {
		case j != nil && j.Status == statusCompleted:
			return okReply(simDoneJSON{ID: j.ID, Conclusion: j.Conclusion}), true
		case j == nil && (live == nil || live.exited):
			return simError(http.StatusNotFound, fmt.Sprintf("no runner %q with a job: never online, deleted, or gone offline", name)), true
		}
		return reply{}, false
	})
}

// simExit is DELETE /_sim/runners/{name}: the runner process went away (its instance shut
// down). The runner stays registered, offline, and gets no job; a job it was running fails, as
// GitHub fails a job whose runner lost communication, and the runner is removed.
func (s *Server) simExit(r *http.Request) reply {
	name := r.PathValue("name")
	s.mu.Lock()
	live, j := s.runnerNamed(name)
	if live == nil || !live.connected || live.exited {
		s.mu.Unlock()
		return simError(http.StatusNotFound, fmt.Sprintf("no runner %q online", name))
	}
	live.exited = true
	s.changedLocked()
	runnerName, runnerID, p := live.Name, live.ID, s.play
	var running int64
	if j != nil && j.Status == statusInProgress {
		running = j.ID
	}
	s.mu.Unlock()

	p.logf("runner %s (id %d) offline: its process exited", runnerName, runnerID)
	if running != 0 && p != nil {
		if err := s.CompleteJob(running, "failure"); err == nil {
			p.logf("job %d completed: failure (runner %s lost communication); the runner is removed", running, runnerName)
			s.announceJob(p.ctx, p, running, statusCompleted)
		}
	}
	return reply{status: http.StatusNoContent}
}

// runnerNamed returns the runner a /_sim path names and the job it was given: the live runner
// of that name (the newest, should runners at several levels share it) and its job, or, once
// the runner is gone, the job the newest runner of that name took. The caller holds s.mu.
func (s *Server) runnerNamed(name string) (live *runnerRecord, job *jobRecord) {
	for _, r := range s.runners {
		if strings.EqualFold(r.Name, name) && (live == nil || r.ID > live.ID) {
			live = r
		}
	}
	for _, j := range s.jobs {
		if j.RunnerName == "" {
			continue
		}
		mine := (live != nil && j.RunnerID == live.ID) || (live == nil && strings.EqualFold(j.RunnerName, name))
		if mine && (job == nil || j.RunnerID > job.RunnerID) {
			job = j
		}
	}
	return live, job
}

// await answers a long-poll: check, called under s.mu, gives the answer once there is one. It
// is called again whenever a job or runner changes (and every pollInterval, for changes nothing
// announces) until the request's wait has passed (204), the client went away, or the server
// closed (503).
func (s *Server) await(r *http.Request, check func() (reply, bool)) reply {
	wait, err := waitParam(r)
	if err != nil {
		return simError(http.StatusBadRequest, err.Error())
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		s.mu.Lock()
		rp, ok := check()
		changed := s.changed
		s.mu.Unlock()
		if ok {
			return rp
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-deadline.C:
			return reply{status: http.StatusNoContent}
		case <-r.Context().Done():
			return reply{status: http.StatusNoContent} // no one is left to read it
		case <-s.closed:
			return simError(http.StatusServiceUnavailable, "the simulator is closing")
		}
	}
}

// waitParam reads the wait query parameter: seconds, fractions allowed, default 0 (answer at
// once), at most maxWait.
func waitParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	sec, err := strconv.ParseFloat(v, 64)
	if err != nil || !(sec >= 0) {
		return 0, fmt.Errorf("wait=%q: want a number of seconds >= 0", v)
	}
	return time.Duration(min(sec, maxWait.Seconds()) * float64(time.Second)), nil
}
