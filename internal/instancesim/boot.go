package instancesim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

const (
	// watchEvery is how often an instance's console is read.
	watchEvery = 100 * time.Millisecond
	// flushGrace is how long what the bootstrap leaves behind may run after it exits on its own:
	// its runner-output reader logs the runner's last lines.
	flushGrace = 2 * time.Second
	// powerOffDelay is how long the bootstrap may go on after calling shutdown before the machine
	// is off (it exits right after; a real shutdown stops the service within seconds).
	powerOffDelay = 10 * time.Second
)

// instance is the Sim's record of one instance; the Sim's mu guards the embedded Instance and the
// fields below it that change.
type instance struct {
	Instance
	done chan struct{} // closed once nothing of the instance runs

	killAt     time.Time // when a stopped bootstrap gets SIGKILL; zero unless stopped
	shutdownAt time.Time // when the console said "shutting down"

	console consoleReader // used by the watcher only
	imds    *http.Server  // closed by the watcher
}

// boot starts an instance that just appeared, or holds it.
func (s *Sim) boot(inst types.Instance) {
	id := aws.ToString(inst.InstanceId)
	dir := filepath.Join(s.opts.WorkDir, id)
	in := &instance{
		Instance: Instance{ID: id, Dir: dir, Console: filepath.Join(dir, consoleFile)},
		done:     make(chan struct{}),
	}
	in.console.path = in.Console
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.instances[id] = in
	s.order = append(s.order, id)
	if s.hold > 0 {
		s.hold--
		in.State = Held
		s.mu.Unlock()
		s.opts.Log("%s held: not booting", id)
		return
	}
	in.State = Booting
	in.BootedAt = time.Now()
	s.wg.Add(1)
	s.mu.Unlock()

	tags := map[string]string{}
	for _, t := range inst.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	cmd, err := s.start(in, tags)
	if err != nil {
		s.opts.Log("%s did not boot: %v", id, err)
		exited := make(chan struct{})
		close(exited)
		go s.watch(in, nil, exited)
		return
	}
	s.mu.Lock()
	in.PID = cmd.Process.Pid
	closed := s.closed
	if closed && in.Ending == "" {
		in.Ending = EndedClosed
	}
	s.mu.Unlock()
	if closed { // Close ran while this one was starting: it saw no process to kill
		s.killGroup(in)
	} else {
		s.opts.Log("%s booted: bootstrap pid %d, console %s", id, cmd.Process.Pid, in.Console)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status is in cmd.ProcessState
		close(exited)
	}()
	go s.watch(in, cmd, exited)
}

// start lays out the sandbox, starts the metadata double and then the bootstrap.
func (s *Sim) start(in *instance, tags map[string]string) (*exec.Cmd, error) {
	bash := filepath.Join(s.tools, "bash")
	runner := filepath.Join(in.Dir, runnerDir)
	runSh := runScript(s.tools, s.opts.RunnerURL, s.caFile, filepath.Join(runner, "_sim"))
	if err := writeSandbox(in.Dir, runSh); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("metadata double: %w", err)
	}
	in.imds = &http.Server{Handler: newIMDS(in.ID, s.opts.Region, tags), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = in.imds.Serve(ln) }() // ends with Close

	env := []string{
		"PATH=" + filepath.Join(in.Dir, stubsDir) + ":" + s.tools,
		"HOME=" + filepath.Join(in.Dir, homeDir),
		"LANG=C.UTF-8",
		"SPOTRUNNER_IMDS_URL=http://" + ln.Addr().String(),
		"SPOTRUNNER_RUNNER_DIR=" + runner,
		"SPOTRUNNER_CONSOLE=" + in.Console,
		"AWS_ENDPOINT_URL=" + s.opts.Endpoint,
		"AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing",
		"AWS_REGION=" + s.opts.Region,
		"AWS_DEFAULT_REGION=" + s.opts.Region,
		"AWS_EC2_METADATA_DISABLED=true", // the CLI must never look for 169.254.169.254
	}
	if s.opts.MinuteSeconds > 0 {
		env = append(env, "SPOTRUNNER_MINUTE_SECONDS="+strconv.Itoa(s.opts.MinuteSeconds))
	}
	if s.opts.JITWaitSeconds > 0 {
		env = append(env, "SPOTRUNNER_JIT_WAIT_SECONDS="+strconv.Itoa(s.opts.JITWaitSeconds))
	}
	out, err := os.Create(filepath.Join(in.Dir, outputFile))
	if err != nil {
		_ = in.imds.Close()
		return nil, err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(bash, s.opts.Bootstrap)
	cmd.Env = env
	cmd.Dir = in.Dir
	cmd.Stdout, cmd.Stderr = out, out // files, so Wait does not wait for the group's pipes
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = in.imds.Close()
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return cmd, nil
}

// watch follows an instance from its boot to its end: it reads the console for events, applies a
// stop's SIGKILL deadline and the power-off, and once the bootstrap has exited, ends the instance.
func (s *Sim) watch(in *instance, cmd *exec.Cmd, exited <-chan struct{}) {
	defer s.wg.Done()
	defer close(in.done)
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	for alive := true; alive; {
		select {
		case <-exited:
			alive = false
		case <-tick.C:
		}
		s.readConsole(in)
		s.mu.Lock()
		killAt, shutdownAt := in.killAt, in.shutdownAt
		s.mu.Unlock()
		if !killAt.IsZero() && time.Now().After(killAt) || !shutdownAt.IsZero() && time.Since(shutdownAt) > powerOffDelay {
			s.killGroup(in)
		}
	}

	s.mu.Lock()
	ending, pid := in.Ending, in.PID
	s.mu.Unlock()
	if pid != 0 {
		if ending == "" {
			waitGroupEmpty(pid, flushGrace)
		}
		s.killGroup(in) // the machine is off: nothing of it runs on
		waitGroupEmpty(pid, flushGrace)
	}
	if in.imds != nil {
		_ = in.imds.Close()
	}
	in.console.final = true
	s.readConsole(in)

	s.mu.Lock()
	runner, concluded := in.Runner, in.Conclusion != ""
	s.mu.Unlock()
	if runner != "" && !concluded && ending != EndedClosed {
		s.runnerGone(in.ID, runner)
	}

	status := -1
	if cmd != nil && cmd.ProcessState != nil {
		status = cmd.ProcessState.ExitCode()
	}
	s.mu.Lock()
	if in.Ending == "" {
		in.Ending = EndedItself
	}
	ending = in.Ending
	in.ExitStatus = status
	s.mu.Unlock()

	switch ending {
	case EndedItself:
		// Finished even when Close comes meanwhile: the instance powered itself off before.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 30*time.Second)
		defer cancel()
		if _, err := s.opts.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{in.ID}}); err != nil {
			s.opts.Log("%s bootstrap exited with status %d; terminate instance %q: %v", in.ID, status, in.ID, err)
		} else {
			s.opts.Log("%s terminated: its bootstrap exited with status %d (shutdown behaviour terminate)", in.ID, status)
		}
	case EndedElsewhere:
		s.opts.Log("%s ended: bootstrap stopped (exit status %d) after the instance was terminated elsewhere", in.ID, status)
	case EndedInterrupted:
		s.opts.Log("%s ended: bootstrap stopped (exit status %d) by the interruption", in.ID, status)
	case EndedClosed:
		s.opts.Log("%s ended: bootstrap killed (exit status %d) by Close", in.ID, status)
	}
	s.mu.Lock()
	in.State = Ended
	s.mu.Unlock()
}

// runnerGone tells the GitHub simulator that a runner went away with its instance before its job
// ended (DELETE /_sim/runners/<name>), as GitHub learns when the runner's session lapses: a job it
// was running fails. A runner already gone there (404) is no news.
func (s *Sim) runnerGone(id, runner string) {
	u := strings.TrimSuffix(s.opts.RunnerURL, "/") + simRunnersPath + "/" + url.PathEscape(runner)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		s.opts.Log("%s runner %s went away; telling the GitHub simulator: %v", id, runner, err)
		return
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.opts.Log("%s runner %s went away; telling the GitHub simulator: %v", id, runner, err)
		return
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK:
		s.opts.Log("%s runner %s went away with its instance (the GitHub simulator was told)", id, runner)
	case http.StatusNotFound:
		s.opts.Log("%s runner %s went away with its instance (the GitHub simulator had it offline already)", id, runner)
	default:
		s.opts.Log("%s runner %s went away; telling the GitHub simulator: HTTP %d", id, runner, resp.StatusCode)
	}
}

// stop ends an instance that left the running state (the caller set Ending): a held one at once,
// a booted one as systemd stops a service, SIGTERM to its process group now and SIGKILL after
// StopGrace (the watcher keeps that deadline).
func (s *Sim) stop(in *instance) {
	s.mu.Lock()
	if in.State == Held {
		in.State = Ended
		s.mu.Unlock()
		close(in.done)
		return
	}
	if in.State == Ended || !in.killAt.IsZero() {
		s.mu.Unlock()
		return
	}
	in.killAt = time.Now().Add(s.opts.StopGrace)
	pid := in.PID
	s.mu.Unlock()
	if pid != 0 {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
	}
}

// killGroup sends SIGKILL to the bootstrap's process group: the runner, its requests, everything.
func (s *Sim) killGroup(in *instance) {
	s.mu.Lock()
	pid := in.PID
	s.mu.Unlock()
	if pid != 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// readConsole reads what the console gained and turns the lines into events.
func (s *Sim) readConsole(in *instance) {
	for _, line := range in.console.lines() {
		_, msg, ok := strings.Cut(line, " spotrunner: ")
		if !ok {
			continue
		}
		var event string
		s.mu.Lock()
		if out, isRunner := strings.CutPrefix(msg, "runner: "); isRunner {
			if m := connectedLine.FindStringSubmatch(out); m != nil && in.Runner == "" {
				in.Runner, in.RunnerID, in.ConnectedAt = m[1], m[2], time.Now()
				if in.State == Booting {
					in.State = Running
				}
				event = fmt.Sprintf("%s runner %s registered (id %s), %.1f s after boot", in.ID, in.Runner, in.RunnerID, in.ConnectedAt.Sub(in.BootedAt).Seconds())
			} else if m := runningLine.FindStringSubmatch(out); m != nil && in.Job == "" {
				in.Job = m[1]
				event = fmt.Sprintf("%s job %q started on runner %s", in.ID, in.Job, in.Runner)
			} else if m := completedLine.FindStringSubmatch(out); m != nil && in.Conclusion == "" {
				in.Conclusion = m[2]
			}
		} else if reason, isShutdown := strings.CutPrefix(msg, "shutting down: "); isShutdown && in.shutdownAt.IsZero() {
			in.ShutdownReason, in.shutdownAt = reason, time.Now()
			event = fmt.Sprintf("%s shut down: %s", in.ID, reason)
		}
		s.mu.Unlock()
		if event != "" {
			s.opts.Log("%s", event)
		}
	}
}

// consoleReader returns the complete lines a growing file gained since the last call.
type consoleReader struct {
	path    string
	offset  int64
	partial []byte
	final   bool // the writer is gone: a last line without its newline counts
}

func (c *consoleReader) lines() []string {
	f, err := os.Open(c.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, c.offset, 1<<40))
	if err != nil {
		return nil
	}
	c.offset += int64(len(b))
	b = append(c.partial, b...)
	var out []string
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	c.partial = append([]byte(nil), b...)
	if c.final && len(c.partial) > 0 {
		out = append(out, string(c.partial))
		c.partial = nil
	}
	return out
}

// groupMembers returns the live (not zombie) processes of process group pgid, from /proc.
func groupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so cut at the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// waitGroupEmpty waits up to d until process group pgid has no live process.
func waitGroupEmpty(pgid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) || len(groupMembers(pgid)) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
