package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spotrunner/spotrunner/libs/fleet"
	"github.com/spotrunner/spotrunner/libs/githubapp"
	"github.com/spotrunner/spotrunner/libs/labels"
	"github.com/spotrunner/spotrunner/libs/logging"
	"github.com/spotrunner/spotrunner/libs/presets"
	"github.com/spotrunner/spotrunner/libs/queue"
	"github.com/spotrunner/spotrunner/libs/state"
)

// Presets gives a preset by name (presets.Store).
type Presets interface {
	Get(ctx context.Context, name string) (presets.Preset, error)
}

// Launcher starts, finds and terminates our instances (fleet.Client).
type Launcher interface {
	Launch(ctx context.Context, r fleet.Request) (fleet.Instance, error)
	Find(ctx context.Context, tags map[string]string) ([]fleet.Instance, error)
	Lookup(ctx context.Context, id string) (fleet.Instance, bool, error)
	Terminate(ctx context.Context, ids ...string) error
}

// Registrar registers and removes JIT runners (githubapp.App).
type Registrar interface {
	Check(ctx context.Context, installationID int64) error
	GenerateJITConfig(ctx context.Context, t githubapp.Target, name string, labels []string, groupID int64) (githubapp.JITConfig, error)
	RunnerByName(ctx context.Context, t githubapp.Target, name string) (githubapp.Runner, bool, error)
	DeleteRunner(ctx context.Context, t githubapp.Target, id int64) error
}

// Publisher puts a relaunch on the job queue (queue.Publisher).
type Publisher interface {
	Publish(ctx context.Context, m queue.Message) error
}

// Tags put on every instance (and its volumes) we launch; the reaper and Terminate touch nothing
// without spotrunner:managed=true.
const (
	tagJob     = "spotrunner:job"
	tagAttempt = "spotrunner:attempt"
)

// process handles one decoded message and says what it did.
func (h *Handler) process(ctx context.Context, m queue.Message, receives int) (string, error) {
	switch m.Action {
	case queue.ActionQueued:
		return h.provision(ctx, m, receives)
	case queue.ActionInProgress:
		return h.started(ctx, m)
	default:
		return h.finished(ctx, m)
	}
}

// provision takes a queued job to launched: claim, preset, AMI, cap, launch, register, record.
func (h *Handler) provision(ctx context.Context, m queue.Message, receives int) (string, error) {
	spec, _, lerr := labels.Find(m.Labels)
	if lerr != nil {
		var le *labels.Error
		reason := lerr.Error()
		if errors.As(lerr, &le) {
			reason = le.Reason
		}
		return h.rejectNew(ctx, m.Host, m.JobID, reason, jobFrom(m))
	}
	job, _, err := h.jobs.CreateJob(ctx, jobFrom(m), state.Queued)
	if err != nil {
		return "", err
	}
	if !job.State.Pending() {
		return "duplicate: job is " + string(job.State), nil
	}
	resuming := job.State == state.Provisioning || receives > 1
	job, err = h.jobs.Claim(ctx, m.Host, m.JobID, h.cfg.Lease)
	if errors.Is(err, state.ErrConflict) {
		if job.State == state.Provisioning {
			return "", fmt.Errorf("job %d: %w", m.JobID, errBusy)
		}
		return "duplicate: job is " + string(job.State), nil
	}
	if err != nil {
		return "", err
	}

	p, err := h.presets.Get(ctx, spec.Preset)
	if errors.Is(err, presets.ErrUnknown) {
		return h.reject(ctx, job, fmt.Sprintf("unknown preset %q", spec.Preset))
	}
	if err != nil {
		return "", h.yield(ctx, job, err)
	}
	if err := p.Serves(spec, m.Labels); err != nil {
		return h.reject(ctx, job, err.Error())
	}
	ami, err := h.usableAMI(ctx, job, p)
	switch {
	case errors.Is(err, errGaveUp):
		return "failed: no AMI", nil
	case errors.Is(err, errNoAMI):
		return h.wait(ctx, job, m, err)
	case err != nil:
		return "", h.yield(ctx, job, err)
	}
	target := targetOf(job)
	// Before spending an instance: can the App act for this owner at all, and did GitHub not
	// refuse its runners a moment ago?
	if err := h.github.Check(ctx, job.InstallationID); err != nil {
		return "", h.yield(ctx, job, err)
	}
	if err := h.refusedRecently(target); err != nil {
		return "", h.yield(ctx, job, err)
	}

	inst, err := h.instanceFor(ctx, &job, p, spec, ami, resuming)
	switch {
	case errors.Is(err, state.ErrCapReached) || errors.Is(err, fleet.ErrCapacity):
		return h.wait(ctx, job, m, err)
	case errors.Is(err, errMovedOn):
		return "duplicate: " + err.Error(), nil
	case errors.Is(err, state.ErrConflict):
		// The job moved on before its slot was taken: nothing was launched.
		return "duplicate: " + err.Error(), nil
	case err != nil:
		return "", h.yield(ctx, job, err)
	}
	ctx = logging.WithInstance(ctx, inst.ID)
	if err := h.register(ctx, job, target, inst.ID, resuming); err != nil {
		return h.registrationFailed(ctx, job, target, inst.ID, err)
	}
	h.accepted(target)
	_, err = h.jobs.Transition(ctx, job.Host, job.ID, []state.JobState{state.Provisioning}, state.Launched,
		state.Change{RunnerName: queue.RunnerName(inst.ID)})
	if errors.Is(err, state.ErrConflict) {
		// The job started or ended while we launched (another runner took it): this runner is
		// spare; the count decides whether another job gets it or it goes.
		return "launched spare runner", h.reconcile(ctx, job.Host, job.LabelSet)
	}
	if err != nil {
		return "", err
	}
	return "launched " + inst.ID, nil
}

// wait puts a job that cannot launch yet (a full cap, no AMI yet, no capacity) back to queued
// with the reason, and queues a retry for later in a group of its own: the job's in_progress or
// completed events are not held up behind the wait, and a retry that finds the job started or
// ended is a duplicate. The event itself is acknowledged.
func (h *Handler) wait(ctx context.Context, job state.Job, m queue.Message, cause error) (string, error) {
	reason := "waiting: " + cause.Error()
	if _, err := h.jobs.Transition(ctx, job.Host, job.ID, []state.JobState{state.Provisioning}, state.Queued, state.Change{Reason: reason}); err != nil {
		if errors.Is(err, state.ErrConflict) {
			return "duplicate: job moved on", nil
		}
		return "", err
	}
	retry := m
	retry.Retry++
	retry.NotBefore = h.now().Add(h.backoff.delay(retry.Retry)).UTC()
	if err := h.requeue.Publish(ctx, retry); err != nil {
		return "", fmt.Errorf("queue retry of job %d: %w", job.ID, err)
	}
	return reason, nil
}

// registrationFailed decides what a failed runner registration leaves behind. Transient: the
// instance stays recorded and the retry resumes with it. Refused for good by GitHub: the instance
// is terminated; a 422 (GitHub will not take this registration as sent) fails the job, anything
// else (403, App not installed, 404) is the operator's to fix: the job goes back to wait for a
// fresh launch, the refusal is remembered for a while so retries do not launch in vain, and the
// message heads for the DLQ.
func (h *Handler) registrationFailed(ctx context.Context, job state.Job, t githubapp.Target, instanceID string, err error) (string, error) {
	if !permanentRegistration(err) {
		return "", h.yield(ctx, job, err)
	}
	h.discard(ctx, job, instanceID)
	if errors.Is(err, githubapp.ErrInvalid) {
		return h.fail(ctx, job, "runner registration refused by GitHub: "+err.Error())
	}
	h.refused(t, err)
	if _, terr := h.jobs.Transition(ctx, job.Host, job.ID, []state.JobState{state.Provisioning}, state.Provisioning,
		state.Change{ClearInstance: true, NextLaunchTry: true, ExpireLease: true}); terr != nil && !errors.Is(terr, state.ErrConflict) {
		return "", errors.Join(err, terr)
	}
	return "", err
}

// usableAMI returns the AMI to launch from, or errNoAMI while the preset has none (the job waits),
// up to NoAMIWait after the job was queued; then the job fails with the reason (errGaveUp).
func (h *Handler) usableAMI(ctx context.Context, job state.Job, p presets.Preset) (string, error) {
	img, err := h.jobs.PresetImage(ctx, p.Name)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return "", err
	}
	if ami := img.UsableAMI(); ami != "" {
		return ami, nil
	}
	waited := h.now().Sub(job.ReceivedAt)
	if waited > h.cfg.NoAMIWait {
		_, err := h.fail(ctx, job, fmt.Sprintf("preset %s has no AMI after waiting %s (image build %s)", p.Name, h.cfg.NoAMIWait, statusOr(img.Status, "not started")))
		if err != nil {
			return "", err
		}
		return "", errGaveUp
	}
	return "", fmt.Errorf("preset %s (image %s), waited %s: %w", p.Name, statusOr(img.Status, "not built"), waited.Round(time.Second), errNoAMI)
}

// errGaveUp ends a message whose job was just marked failed; it is acknowledged.
var errGaveUp = errors.New("gave up")

func statusOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// instanceFor returns the job's instance: the one recorded for this attempt when it can still
// become the runner, else the one tagged for this attempt when resuming (a crash or timeout after
// CreateFleet must not launch a second), else a new launch within the caps. A new launch is
// recorded on the job and as an idle runner in one transaction (RecordLaunch); an instance whose
// job moved on meanwhile is terminated at once (errMovedOn).
func (h *Handler) instanceFor(ctx context.Context, job *state.Job, p presets.Preset, spec labels.Spec, ami string, resuming bool) (fleet.Instance, error) {
	job.Preset = p.Name
	if job.InstanceID != "" {
		why, err := h.unusable(ctx, *job)
		if err != nil {
			return fleet.Instance{}, err
		}
		if why == "" {
			return h.recordInstance(ctx, job, fleet.Instance{ID: job.InstanceID})
		}
		logging.From(ctx).Warn().Str("discardInstance", job.InstanceID).Str("why", why).Msg("recorded instance cannot become the runner: launching anew")
		if err := h.abandon(ctx, job); err != nil {
			return fleet.Instance{}, err
		}
		resuming = false // the dead instance was this try's; the new try has none yet
	}
	launch := h.launchSpec(p, spec, ami)
	if job.Launch != nil {
		launch = *job.Launch // fixed at this try's first call: the same token must send the same request
	}
	tags := h.tags(*job, p.Name, launch)
	if resuming {
		if inst, ok, err := h.findLaunched(ctx, tags); err != nil || ok {
			if err != nil {
				return fleet.Instance{}, err
			}
			return h.recordInstance(ctx, job, inst)
		}
	}
	if err := h.jobs.AcquireSlot(ctx, job.Host, job.ID, p.Name, h.cfg.MaxRunners, p.MaxRunners, launch); err != nil {
		return fleet.Instance{}, err
	}
	job.SlotHeld, job.Launch = true, &launch
	inst, err := h.fleet.Launch(ctx, h.request(*job, launch, tags))
	switch {
	case errors.Is(err, fleet.ErrTokenReused):
		// This try's token went with another request (one sent before launch inputs were fixed on
		// the job): its instance, if any, carries this attempt's tags; otherwise a new try.
		if inst, ok, ferr := h.findLaunched(ctx, tags); ok && ferr == nil {
			return h.recordInstance(ctx, job, inst)
		}
		return fleet.Instance{}, errors.Join(err, h.nextTry(ctx, job, p.Name))
	case errors.Is(err, fleet.ErrImageGone):
		// The AMI was deregistered or disabled after the preset record named it. EC2 launched
		// nothing (it refused the call, or its fleet answered zero instances): the record forgets
		// the AMI (the previous one takes its place, or none is left and jobs wait for a build),
		// the slot goes back and the job moves to a new try, whose launch inputs the retry builds
		// from the record afresh.
		_, derr := h.jobs.DropAMI(ctx, p.Name, launch.ImageID)
		return fleet.Instance{}, errors.Join(err, derr, h.nextTry(ctx, job, p.Name))
	case err != nil && fleet.LaunchedNothing(err):
		// A definite "no instance": the slot goes back, and the next try needs a new token (AWS
		// answers a reused ClientToken with its first answer, failures included). After any other
		// failure an instance may exist: the job keeps its slot and the retry sends the same token.
		return fleet.Instance{}, errors.Join(err, h.nextTry(ctx, job, p.Name))
	case err != nil:
		return fleet.Instance{}, err
	}
	return h.recordInstance(ctx, job, inst)
}

// findLaunched returns the live instance tagged for this job's attempt by this deployment, if
// there is one. The deployment matters: another stack in the account may have launched for the
// same job id (its own GitHub, or a split of one GitHub's repositories), and its instance is not
// this job's.
func (h *Handler) findLaunched(ctx context.Context, tags map[string]string) (fleet.Instance, bool, error) {
	found, err := h.fleet.Find(ctx, map[string]string{
		fleet.ManagedTag: "true", fleet.DeploymentTag: h.cfg.Deployment, tagJob: tags[tagJob], tagAttempt: tags[tagAttempt],
	})
	if err != nil || len(found) == 0 {
		return fleet.Instance{}, false, err
	}
	return found[0], true, nil
}

// nextTry gives back the slot of a try that launched nothing and moves the job to a new try (a new
// ClientToken, launch inputs built afresh).
func (h *Handler) nextTry(ctx context.Context, job *state.Job, preset string) error {
	_, terr := h.jobs.Transition(ctx, job.Host, job.ID, []state.JobState{state.Provisioning}, state.Provisioning, state.Change{NextLaunchTry: true})
	return errors.Join(h.jobs.GiveBackSlot(ctx, job.Host, job.ID, preset), terr)
}

// unusable says why the instance recorded on job cannot become its runner, or "" when it can: it
// is gone or stopping, or it was launched so long ago, with no runner registered for it, that its
// bootstrap has stopped waiting for a config (ConfigDeadline; docs/provisioning.md).
func (h *Handler) unusable(ctx context.Context, job state.Job) (string, error) {
	inst, found, err := h.fleet.Lookup(ctx, job.InstanceID)
	switch {
	case err != nil:
		return "", err
	case !found:
		return "instance not found", nil
	case inst.State != "pending" && inst.State != "running":
		return "instance is " + inst.State, nil
	}
	r, err := h.jobs.Runner(ctx, job.InstanceID)
	if err != nil || r.RunnerID != 0 || h.now().Sub(r.LaunchedAt) < h.cfg.ConfigDeadline {
		return "", nil // registered, or still in time (a missing runner item is written on record)
	}
	// Registration comes before delivery: no runner of that name on GitHub, no config delivered.
	_, registered, err := h.github.RunnerByName(ctx, targetOf(job), queue.RunnerName(job.InstanceID))
	if err != nil || registered {
		return "", err
	}
	return fmt.Sprintf("no config delivered %s after launch", h.now().Sub(r.LaunchedAt).Round(time.Second)), nil
}

// abandon discards the instance recorded on job and moves the job to a new try without it.
func (h *Handler) abandon(ctx context.Context, job *state.Job) error {
	old := job.InstanceID
	h.discard(ctx, *job, old)
	j, err := h.jobs.Transition(ctx, job.Host, job.ID, []state.JobState{state.Provisioning}, state.Provisioning,
		state.Change{ClearInstance: true, NextLaunchTry: true, ExpectInstance: &old})
	if err != nil {
		return fmt.Errorf("abandon instance %s of job %d: %w", old, job.ID, err)
	}
	*job = j
	return nil
}

// recordInstance records inst as the job's launch and its idle runner (the slot moving with it).
// A job that moved on meanwhile (started elsewhere, ended, or naming another instance) has no use
// for inst: it is terminated at once and the slot taken for it given back.
func (h *Handler) recordInstance(ctx context.Context, job *state.Job, inst fleet.Instance) (fleet.Instance, error) {
	launch := state.LaunchSpec{}
	if job.Launch != nil {
		launch = *job.Launch
	}
	now := h.now().UTC()
	t := targetOf(*job)
	j, err := h.jobs.RecordLaunch(ctx, *job, state.Runner{
		InstanceID: inst.ID, Host: job.Host, JobID: job.ID, Owner: t.Owner, Repo: t.Repo,
		InstallationID: job.InstallationID, Preset: job.Preset, Labels: job.Labels, LabelSet: job.LabelSet,
		RunnerName: queue.RunnerName(inst.ID), CapacityType: inst.CapacityType, InstanceType: inst.InstanceType,
		LaunchedAt: now, Deadline: now.Add(time.Duration(launch.TimeoutMinutes) * time.Minute),
	}, h.cfg.Lease)
	if errors.Is(err, state.ErrConflict) {
		log := logging.From(ctx)
		if terr := h.fleet.Terminate(ctx, inst.ID); terr != nil {
			log.Error().Err(terr).Str("terminateInstance", inst.ID).Msg("terminate instance of a job that moved on (the reaper will retry)")
		}
		if job.SlotHeld {
			if gerr := h.jobs.GiveBackSlot(ctx, job.Host, job.ID, job.Preset); gerr != nil {
				return inst, errors.Join(gerr, err)
			}
		}
		return inst, fmt.Errorf("instance %s terminated: job %d is %s: %w", inst.ID, job.ID, j.State, errMovedOn)
	}
	if err != nil {
		return inst, err
	}
	*job = j
	return inst, nil
}

// errMovedOn ends a launch whose job no longer waits for it; the message is acknowledged.
var errMovedOn = errors.New("job moved on during its launch")

// launchSpec is what this try asks EC2 for, from the preset, the job's options and the AMI.
func (h *Handler) launchSpec(p presets.Preset, spec labels.Spec, ami string) state.LaunchSpec {
	l := state.LaunchSpec{
		ImageID: ami, LaunchTemplateID: p.LaunchTemplateID, InstanceTypes: p.InstanceTypes, SubnetIDs: h.cfg.SubnetIDs,
		Strategy: string(p.Strategy), DiskSizeGB: p.DiskSizeGB, TimeoutMinutes: p.TimeoutMinutes, IdleMinutes: p.IdleMinutes,
	}
	if spec.CPU > 0 || spec.RAMGiB > 0 {
		l.MinVCPU, l.MinMemoryGiB, l.Architecture = spec.CPU, spec.RAMGiB, p.Architecture
	}
	return l
}

// request is the fleet request of launch spec l for job.
func (h *Handler) request(job state.Job, l state.LaunchSpec, tags map[string]string) fleet.Request {
	r := fleet.Request{
		ClientToken: h.clientToken(job), LaunchTemplateID: l.LaunchTemplateID, ImageID: l.ImageID,
		InstanceTypes: l.InstanceTypes, SubnetIDs: l.SubnetIDs, Strategy: fleet.Strategy(l.Strategy),
		DiskSizeGB: l.DiskSizeGB, Tags: tags,
	}
	if l.MinVCPU > 0 || l.MinMemoryGiB > 0 {
		r.Requirements = &fleet.Requirements{MinVCPU: l.MinVCPU, MinMemoryGiB: l.MinMemoryGiB, Architecture: l.Architecture}
	}
	return r
}

// register creates the JIT runner for instanceID and delivers its config, once. Resuming after
// a crash, it works out how far the earlier attempt got: runner id recorded → done; config still
// waiting in SSM → done, record the id; a runner of that name online or busy → its instance got
// the config, record the id. A runner of that name that is offline with no config waiting was
// registered but never delivered: a JIT config cannot be fetched again, so it is deleted and
// registered anew (the 409 after a retry that is not an error).
func (h *Handler) register(ctx context.Context, job state.Job, t githubapp.Target, instanceID string, resuming bool) error {
	name := queue.RunnerName(instanceID)
	if resuming {
		if r, err := h.jobs.Runner(ctx, instanceID); err == nil && r.RunnerID != 0 {
			return nil
		}
		delivered, err := h.jit.Exists(ctx, instanceID)
		if err != nil {
			return err
		}
		if delivered {
			return h.adopt(ctx, t, instanceID)
		}
	}
	cfg, err := h.github.GenerateJITConfig(ctx, t, name, job.LabelSet, h.cfg.RunnerGroupID)
	renewed := false
	if errors.Is(err, githubapp.ErrConflict) {
		old, found, ferr := h.github.RunnerByName(ctx, t, name)
		if ferr != nil {
			return ferr
		}
		if found && (old.Busy || old.Status == "online") {
			return h.recordRunnerID(ctx, instanceID, old.ID)
		}
		if found {
			err := h.github.DeleteRunner(ctx, t, old.ID)
			if errors.Is(err, githubapp.ErrInvalid) {
				// GitHub refuses to delete a busy runner: it took a job since the look-up, so its
				// instance has the config. A refusal here must never cost the instance its job.
				return h.recordRunnerID(ctx, instanceID, old.ID)
			}
			if err != nil {
				return err
			}
		}
		cfg, err = h.github.GenerateJITConfig(ctx, t, name, job.LabelSet, h.cfg.RunnerGroupID)
		renewed = true
	}
	if err != nil {
		return err
	}
	logging.Redact(cfg.Encoded)
	// A renewed registration replaces any config of the deleted one still waiting in SSM.
	if err := h.jit.Put(ctx, instanceID, h.instanceARN(instanceID), cfg.Encoded, renewed); err != nil {
		return err
	}
	return h.recordRunnerID(ctx, instanceID, cfg.RunnerID)
}

// adopt records the id of the runner already registered under instanceID's name.
func (h *Handler) adopt(ctx context.Context, t githubapp.Target, instanceID string) error {
	r, found, err := h.github.RunnerByName(ctx, t, queue.RunnerName(instanceID))
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("runner %s: config delivered but registration missing: %w", queue.RunnerName(instanceID), githubapp.ErrUnavailable)
	}
	return h.recordRunnerID(ctx, instanceID, r.ID)
}

// recordRunnerID notes the registration on the runner item; a runner that already took a job
// (busy) is fine, a runner item that does not exist is an error (the retry writes it).
func (h *Handler) recordRunnerID(ctx context.Context, instanceID string, id int64) error {
	_, err := h.jobs.UpdateRunner(ctx, instanceID, []state.RunnerState{state.Idle}, state.Idle, state.RunnerChange{RunnerID: id})
	if err != nil && !errors.Is(err, state.ErrConflict) {
		return err
	}
	return nil
}

// discard terminates an instance that will never be a runner and forgets it.
func (h *Handler) discard(ctx context.Context, job state.Job, instanceID string) {
	log := logging.From(ctx)
	if err := h.fleet.Terminate(ctx, instanceID); err != nil {
		log.Error().Err(err).Msg("terminate discarded instance (the reaper will retry)")
	}
	if err := h.jit.Delete(ctx, instanceID); err != nil {
		log.Error().Err(err).Msg("delete jit config of discarded instance")
	}
	if _, err := h.retire(ctx, instanceID); err != nil {
		log.Error().Err(err).Msg("retire discarded runner (the reaper will retry)")
	}
}

// yield lets the next attempt claim the job at once (its lease is cut short) and returns cause.
func (h *Handler) yield(ctx context.Context, job state.Job, cause error) error {
	if _, err := h.jobs.Transition(ctx, job.Host, job.ID, []state.JobState{state.Provisioning}, state.Provisioning, state.Change{ExpireLease: true}); err != nil && !errors.Is(err, state.ErrConflict) {
		return errors.Join(cause, err)
	}
	return cause
}

// reject records a user error on a claimed job; the message is acknowledged.
func (h *Handler) reject(ctx context.Context, job state.Job, reason string) (string, error) {
	if _, err := h.jobs.Transition(ctx, job.Host, job.ID, []state.JobState{state.Queued, state.Provisioning}, state.Rejected, state.Change{Reason: reason}); err != nil && !errors.Is(err, state.ErrConflict) {
		return "", err
	}
	return "rejected: " + reason, nil
}

// rejectNew records a job that is rejected on arrival (bad labels, malformed message).
func (h *Handler) rejectNew(ctx context.Context, host string, id int64, reason string, base ...state.Job) (string, error) {
	j := state.Job{Host: host, ID: id}
	if len(base) > 0 {
		j = base[0]
	}
	j.Reason = reason
	if _, _, err := h.jobs.CreateJob(ctx, j, state.Rejected); err != nil {
		return "", err
	}
	return "rejected: " + reason, nil
}

// fail gives up on a job with the reason on record; the message is acknowledged. A slot the job
// took for a launch not recorded (it made nothing) is given back.
func (h *Handler) fail(ctx context.Context, job state.Job, reason string) (string, error) {
	j, err := h.jobs.Transition(ctx, job.Host, job.ID, []state.JobState{state.Queued, state.Provisioning, state.Launched}, state.Failed, state.Change{Reason: reason})
	if errors.Is(err, state.ErrConflict) {
		return "duplicate: job is " + string(j.State), nil
	}
	if err != nil {
		return "", err
	}
	if j.SlotHeld {
		if err := h.jobs.GiveBackSlot(ctx, j.Host, j.ID, j.Preset); err != nil {
			return "", err
		}
	}
	if err := h.jobs.CountActivity(ctx, h.now(), state.ActivityFailed); err != nil {
		logging.From(ctx).Warn().Err(err).Msg("count failed job")
	}
	return "failed: " + reason, nil
}

// tags are the instance's tags: our marker, what it is for, and what its bootstrap reads. They
// come from the job and its fixed launch inputs only, so a retry sends the same request.
func (h *Handler) tags(job state.Job, preset string, l state.LaunchSpec) map[string]string {
	return map[string]string{
		fleet.ManagedTag:             "true",
		fleet.DeploymentTag:          h.cfg.Deployment,
		"spotrunner:preset":          preset,
		"spotrunner:host":            job.Host,
		tagJob:                       job.Host + "/" + strconv.FormatInt(job.ID, 10),
		tagAttempt:                   strconv.Itoa(job.Attempt),
		"spotrunner:timeout-minutes": strconv.Itoa(l.TimeoutMinutes),
		"spotrunner:idle-minutes":    strconv.Itoa(l.IdleMinutes),
		"Name":                       "spotrunner-" + preset,
	}
}

func (h *Handler) instanceARN(instanceID string) string {
	return fmt.Sprintf("arn:%s:ec2:%s:%s:instance/%s", h.cfg.Partition, h.cfg.Region, h.cfg.AccountID, instanceID)
}

// clientToken makes CreateFleet idempotent per deployment, job, launch attempt and try (at most
// 64 characters): a crash after CreateFleet retries with the same token and gets the same
// instance. EC2 keeps tokens per account and region, so the deployment is part of it: two stacks
// in one account serving one GitHub (AllowedRepos split between them) never get each other's
// fleet for a job id both saw.
func (h *Handler) clientToken(job state.Job) string {
	sum := sha256.Sum256([]byte(h.cfg.Deployment + "/" + job.Host + "/" + strconv.FormatInt(job.ID, 10) + "/" + strconv.Itoa(job.Attempt) + "/" + strconv.Itoa(job.LaunchTry)))
	return "spotrunner-" + hex.EncodeToString(sum[:20])
}

// targetOf is where the job's runner registers: the org, or the repo of a user-owned one.
func targetOf(j state.Job) githubapp.Target {
	t := githubapp.Target{InstallationID: j.InstallationID, Owner: j.Owner}
	if j.OwnerType == "User" {
		t.Repo = j.Repo
	}
	return t
}

// jobFrom is the job a message describes.
func jobFrom(m queue.Message) state.Job {
	return state.Job{
		Host: m.Host, ID: m.JobID, Owner: m.Owner, OwnerType: m.OwnerType, Repo: m.Repo,
		InstallationID: m.InstallationID, RunID: m.RunID, RunAttempt: m.RunAttempt, Name: m.JobName,
		Labels: m.Labels, LabelSet: labels.Set(m.Labels), ReceivedAt: m.ReceivedAt, Attempt: m.Attempt,
	}
}
