#!/usr/bin/env bash
# spotrunner-bootstrap turns a freshly booted Spot Runner instance into a one-job GitHub Actions
# runner, and then into nothing. spotrunner.service runs it once per boot, as root:
#   1. checks what the image must provide (docs/instance.md, "Bring your own AMI"); anything
#      missing is named on the console and the instance shuts down;
#   2. reads its instance id, region and tags over IMDSv2 (a token first, then every read with
#      it); an instance not tagged spotrunner:managed=true (an Image Builder build or test
#      instance, one launched by hand) is left alone;
#   3. blocks the instance metadata service for the runner user, so job steps get no instance
#      credentials;
#   4. reads its JIT runner config once from SSM Parameter Store
#      (/spotrunner/<deployment>/jit/<instance-id>, SecureString, where the deployment is its
#      spotrunner:deployment tag: the stack that launched it), waiting a bounded time for the provisioner to write it, and deletes it at
#      once; the config stays in memory and the runner's arguments, never on disk or in a log;
#   5. starts run.sh --jitconfig as the runner user, with runner self-update disabled;
#   6. shuts the instance down when the runner exits, when no job started within the idle limit
#      (tag spotrunner:idle-minutes, default 10) or at the preset's timeout (tag
#      spotrunner:timeout-minutes, default 60, counted from boot); the launch template's
#      InstanceInitiatedShutdownBehavior=terminate turns that into a termination.
# Every way out of the service run shuts the instance down, unless step 2 found it unmanaged.
# Each step is logged with a timestamp to the console and to the journal (tag spotrunner).
#
# Overrides, for tests only (production uses the defaults):
#   SPOTRUNNER_IMDS_URL          instance metadata service (http://169.254.169.254)
#   SPOTRUNNER_RUNNER_DIR        the runner's folder (/opt/actions-runner)
#   SPOTRUNNER_CONSOLE           where console lines go (/dev/console)
#   SPOTRUNNER_MINUTE_SECONDS    seconds in a minute of the tag limits (60)
#   SPOTRUNNER_JIT_WAIT_SECONDS  how long to wait for the JIT config to appear (600)
#   AWS_ENDPOINT_URL             the AWS CLI's own endpoint override (unset)
# Every command is looked up on PATH, so a test can put stubs first.
#
# Usage: spotrunner-bootstrap           the service
#        spotrunner-bootstrap --check   step 1 only; the exit status tells (the image build uses it)
set -euo pipefail

readonly imds=${SPOTRUNNER_IMDS_URL:-http://169.254.169.254}
readonly runner_dir=${SPOTRUNNER_RUNNER_DIR:-/opt/actions-runner}
readonly console=${SPOTRUNNER_CONSOLE:-/dev/console}
readonly minute=${SPOTRUNNER_MINUTE_SECONDS:-60}
readonly jit_wait=${SPOTRUNNER_JIT_WAIT_SECONDS:-600}
readonly runner_user=ubuntu
readonly default_timeout_minutes=60
readonly default_idle_minutes=10

check_only=0     # --check: log to stderr too, never shut down
arm_shutdown=0   # set once this instance is ours to end
shutting_down=0
stop_reason=""
job_started=0
runner_pid=""
token=""
instance_id=""
region=""
jit_name="" # /spotrunner/<deployment>/jit/<instance id>
jit_config=""

log() {
  local line
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) spotrunner: $*"
  printf '%s\n' "$line" 2>/dev/null >>"$console" || true
  logger -t spotrunner -- "$*" 2>/dev/null || true
  if ((check_only)); then printf '%s\n' "$line" >&2; fi
}

shutdown_now() {
  if ((shutting_down)); then return 0; fi
  shutting_down=1
  log "shutting down: $1"
  shutdown -h now || log "shutdown -h now failed"
}

on_exit() {
  local rc=$?
  if ((arm_shutdown)); then
    shutdown_now "${stop_reason:-bootstrap stopped unexpectedly (exit status $rc)}"
  fi
}

# fail logs a fatal reason and leaves through the exit trap (which shuts down when armed).
fail() {
  stop_reason=$1
  log "FATAL: $1"
  exit 1
}

check_requirements() {
  local missing=() cmd
  [[ -x $runner_dir/run.sh ]] ||
    missing+=("the GitHub Actions runner at $runner_dir (run.sh, executable)")
  if ! id -u "$runner_user" >/dev/null 2>&1; then
    missing+=("the user $runner_user")
  elif [[ -d $runner_dir ]] && ! runuser -u "$runner_user" -- test -w "$runner_dir"; then
    missing+=("$runner_dir writable by $runner_user (chown -R $runner_user $runner_dir)")
  fi
  for cmd in curl aws jq base64 iptables runuser logger shutdown docker; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("the command $cmd")
  done
  if ((${#missing[@]})); then
    for cmd in "${missing[@]}"; do log "requirement missing: $cmd"; done
    log "this image cannot run Spot Runner jobs; see docs/instance.md, Bring your own AMI"
    return 1
  fi
  log "image requirements ok"
}

imds_token() {
  curl -fsS --connect-timeout 1 --max-time 5 --retry 5 --retry-connrefused --retry-delay 1 \
    -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' "$imds/latest/api/token"
}

imds_get() {
  curl -fsS --connect-timeout 1 --max-time 5 --retry 3 --retry-delay 1 \
    -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/$1"
}

# minutes_tag prints the value of a positive whole-minutes tag, or the default.
minutes_tag() {
  local key=$1 default=$2 tags=$3 value
  if ! grep -qxF -- "$key" <<<"$tags"; then
    printf '%s\n' "$default"
    return 0
  fi
  value=$(imds_get "tags/instance/$key") || value=""
  if [[ $value =~ ^[0-9]+$ ]] && ((10#$value > 0)); then
    printf '%s\n' "$((10#$value))"
  else
    log "warning: tag $key is not a positive number of minutes; using $default"
    printf '%s\n' "$default"
  fi
}

block_imds() {
  iptables -w -I OUTPUT -d 169.254.169.254/32 -m owner --uid-owner "$runner_user" -j REJECT
  if command -v ip6tables >/dev/null 2>&1; then
    ip6tables -w -I OUTPUT -d fd00:ec2::254/128 -m owner --uid-owner "$runner_user" -j REJECT ||
      log "warning: could not block the IPv6 metadata endpoint for $runner_user"
  fi
}

# fetch_jit_config sets jit_config (never printed). It polls until the deadline because the
# provisioner writes the parameter right after the launch returns; the last try's AWS CLI
# error goes to stderr (the journal): it names the parameter, never its value.
fetch_jit_config() {
  local name=$jit_name deadline=$((SECONDS + jit_wait)) tries=0 quiet errfd
  exec {quiet}>/dev/null
  while :; do
    tries=$((tries + 1))
    errfd=$quiet
    if ((SECONDS >= deadline)); then errfd=2; fi
    if jit_config=$(aws ssm get-parameter --region "$region" --name "$name" --with-decryption \
      --query Parameter.Value --output text 2>&"$errfd") && [[ -n $jit_config && $jit_config != None ]]; then
      exec {quiet}>&-
      log "read JIT config $name (try $tries)"
      return 0
    fi
    jit_config=""
    if ((errfd == 2)); then
      exec {quiet}>&-
      return 1
    fi
    sleep $((tries < 30 ? 1 : 5)) # quick while the provisioner is due, then sparing SSM
  done
}

delete_jit_config() {
  local name=$jit_name
  if aws ssm delete-parameter --region "$region" --name "$name" >/dev/null; then
    log "deleted JIT config $name"
  else
    log "warning: could not delete JIT config $name; the reaper removes it with the instance"
  fi
}

# without_update prints the JIT config with the runner's settings (.runner) marked
# disableUpdate. The runner reads that flag from .runner, which a JIT config carries; config.sh
# --disableupdate is what sets it for a classic registration. Pipes only: nothing touches disk.
without_update() {
  printf '%s' "$1" | base64 -d 2>/dev/null |
    jq -ce '.[".runner"] |= (@base64d | ltrimstr("\ufeff") | fromjson | with_entries(select(.key | ascii_downcase != "disableupdate")) | .DisableUpdate = true | tojson | @base64)' 2>/dev/null |
    base64 -w0
}

# runner_output logs the runner's lines and tells the main shell when a job starts.
runner_output() {
  local line
  while IFS= read -r line || [[ -n $line ]]; do
    log "runner: $line"
    if [[ $line == *"Running job:"* ]]; then kill -USR1 "$$" 2>/dev/null || true; fi
  done
}

start_runner() {
  local patched
  if patched=$(without_update "$jit_config") && [[ -n $patched ]]; then
    jit_config=$patched
    log "runner self-update disabled"
  else
    log "warning: could not mark the JIT config disableUpdate; the runner may update itself"
  fi
  trap 'job_started=1' USR1
  runuser -u "$runner_user" -- env -i HOME="/home/$runner_user" USER="$runner_user" \
    LOGNAME="$runner_user" SHELL=/bin/bash LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "$runner_dir/run.sh" --jitconfig "$jit_config" > >(runner_output) 2>&1 &
  runner_pid=$!
  jit_config=""
  log "runner started as $runner_user (pid $runner_pid)"
}

stop_runner() {
  local i
  trap '' USR1 # from here on a late "job started" must not interrupt wait
  kill -TERM "$runner_pid" 2>/dev/null || true
  for ((i = 0; i < 10; i++)); do
    kill -0 "$runner_pid" 2>/dev/null || break
    sleep 1
  done
  kill -KILL "$runner_pid" 2>/dev/null || true
  wait "$runner_pid" 2>/dev/null || true
}

# watch_runner returns with stop_reason set: runner exit, idle limit or timeout.
watch_runner() {
  local idle_minutes=$1 timeout_minutes=$2 started=$SECONDS logged=0 rc=0
  local idle_limit=$((idle_minutes * minute)) timeout_limit=$((timeout_minutes * minute))
  while kill -0 "$runner_pid" 2>/dev/null; do
    if ((!job_started)) && compgen -G "$runner_dir/_diag/Worker_*.log" >/dev/null; then
      job_started=1
    fi
    if ((job_started && !logged)); then
      log "job started"
      logged=1
    fi
    if ((!job_started && SECONDS - started >= idle_limit)); then
      stop_reason="no job started within the idle limit of $idle_minutes min"
      log "$stop_reason; stopping the runner"
      stop_runner
      return 0
    fi
    if ((SECONDS >= timeout_limit)); then
      stop_reason="the preset's timeout of $timeout_minutes min was reached"
      log "$stop_reason; stopping the runner"
      stop_runner
      return 0
    fi
    sleep 1
  done
  trap '' USR1
  wait "$runner_pid" || rc=$?
  stop_reason="the runner exited with status $rc"
  log "$stop_reason"
}

main() {
  if [[ ${1:-} == --check ]]; then
    check_only=1
    check_requirements
    return
  fi
  trap on_exit EXIT
  trap 'exit 143' TERM INT
  arm_shutdown=1
  log "bootstrap starting"

  check_requirements || fail "this image cannot run Spot Runner jobs (requirements above)"

  token=$(imds_token) || fail "no IMDSv2 token from $imds"
  instance_id=$(imds_get instance-id) || fail "could not read the instance id over IMDSv2"
  region=$(imds_get placement/region) || fail "could not read the region over IMDSv2"
  local tags managed deployment idle_minutes timeout_minutes
  tags=$(imds_get tags/instance) || tags=""
  managed=""
  if grep -qxF spotrunner:managed <<<"$tags"; then
    managed=$(imds_get tags/instance/spotrunner:managed) || managed=""
  fi
  if [[ $managed != true ]]; then
    arm_shutdown=0
    log "instance $instance_id is not tagged spotrunner:managed=true (or instance metadata tags are off); leaving it alone"
    return 0
  fi
  deployment=""
  if grep -qxF spotrunner:deployment <<<"$tags"; then
    deployment=$(imds_get tags/instance/spotrunner:deployment) || deployment=""
  fi
  [[ $deployment =~ ^[A-Za-z][A-Za-z0-9-]*$ ]] ||
    fail "instance $instance_id has no valid spotrunner:deployment tag (the stack that launched it)"
  jit_name=/spotrunner/$deployment/jit/$instance_id
  idle_minutes=$(minutes_tag spotrunner:idle-minutes "$default_idle_minutes" "$tags")
  timeout_minutes=$(minutes_tag spotrunner:timeout-minutes "$default_timeout_minutes" "$tags")
  log "instance $instance_id in $region: idle limit $idle_minutes min, timeout $timeout_minutes min"

  block_imds || fail "could not block the metadata service for $runner_user"
  log "metadata service blocked for $runner_user"

  fetch_jit_config || fail "JIT config $jit_name did not appear within $jit_wait s"
  delete_jit_config
  start_runner
  watch_runner "$idle_minutes" "$timeout_minutes"
}

main "$@"
