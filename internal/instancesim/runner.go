package instancesim

import (
	"regexp"
	"strconv"
	"strings"
)

// The stand-in runner (run.sh in the instance's runner folder) speaks this protocol with the
// GitHub simulator, under RunnerURL:
//
//	POST /_sim/runners                       body: the encoded JIT config as run.sh got it
//	  201 {"id": <runner id>, "name": "<runner name>", ...}: connected;
//	  4xx {"message": "..."}: refused (a used, deleted or forged config): run.sh prints the message
//	  and exits 1; anything else (5xx, no answer): retried once a second, 30 times.
//	GET /_sim/runners/<name>/job?wait=20     long poll for the job GitHub assigns
//	  200 {"name": "<job name>"}: the job; 204: nothing yet, ask again; 404: the runner was
//	  removed, exit 1; anything else: ask again a second later.
//	GET /_sim/runners/<name>/done?wait=20    long poll for the job's end
//	  200 {"conclusion": "<conclusion>"}: done, exit 0; 204: ask again; 404: exit 1.
//
// It prints what the real runner prints at the same moments, which the bootstrap watches ("Running
// job:") and the Sim reads from the console:
//
//	Connected to GitHub as runner <name> (id <id>)
//	Current runner version: '2.331.0'
//	<time>: Listening for Jobs
//	<time>: Running job: <job name>
//	<time>: Job <job name> completed with result: <conclusion>
//
// (The real runner prints "√ Connected to GitHub" without its name; the stand-in names itself so
// that the console tells which runner the instance became.) On SIGTERM (the bootstrap's idle limit
// or timeout, a stop) it ends its request at once and exits 143.
//
// The Sim itself sends the last request of a runner whose instance ended before its job did (or
// before it got one): DELETE /_sim/runners/<name>, "the runner went away", which GitHub learns
// when a runner's session lapses. run.sh cannot: a power-off or SIGKILL gives it no last word.
//
// The bootstrap starts run.sh with a clean environment (env -i), so the URL, the CA file and the
// PATH of the sandbox's tools are written into the script. The JIT config goes to curl through a
// pipe: never to a file, never on curl's command line.
const (
	simRunnersPath = "/_sim/runners"
	longPollWait   = 20 // seconds the server may hold a poll
)

// Console lines of the stand-in runner, after the bootstrap's "runner: " prefix.
var (
	connectedLine = regexp.MustCompile(`^Connected to GitHub as runner (.+) \(id ([^)]*)\)$`)
	runningLine   = regexp.MustCompile(`Running job: (.+)$`)
	completedLine = regexp.MustCompile(`Job (.+) completed with result: (.*)$`)
)

// runScript returns the stand-in run.sh. scratch is a folder it may use for response bodies.
func runScript(tools, runnerURL, caFile, scratch string) string {
	tls := "()"
	if caFile != "" {
		tls = "(--cacert " + shellQuote(caFile) + ")"
	}
	r := strings.NewReplacer(
		"@PATH@", shellQuote(tools),
		"@URL@", shellQuote(strings.TrimSuffix(runnerURL, "/")+simRunnersPath),
		"@TLS@", tls,
		"@SCRATCH@", shellQuote(scratch),
		"@WAIT@", strconv.Itoa(longPollWait),
	)
	return r.Replace(runTemplate)
}

const runTemplate = `#!/usr/bin/env bash
# run.sh stand-in written by internal/instancesim (see its runner.go): connects to the GitHub
# simulator with the JIT config, takes one job, waits for it to end, exits.
# Usage: run.sh --jitconfig <encoded JIT config>
set -uo pipefail
export PATH=@PATH@ TZ=UTC
readonly runners=@URL@ scratch=@SCRATCH@
readonly tls=@TLS@

if [[ $# -ne 2 || $1 != --jitconfig || -z $2 ]]; then
  echo "usage: run.sh --jitconfig <encoded JIT config>" >&2
  exit 2
fi
config=$2

say() { printf '%(%Y-%m-%d %H:%M:%SZ)T: %s\n' -1 "$*"; }

child=""
# shellcheck disable=SC2317 # called by the traps
on_signal() {
  if [[ -n $child ]]; then kill "$child" 2>/dev/null; fi
  say "Runner stopped by a signal"
  exit 143
}
trap on_signal TERM INT
# shellcheck disable=SC2317
cleanup() { rm -rf "$scratch"; }
trap cleanup EXIT
mkdir -p "$scratch" || exit 1

code="" body="" answer=""
# request METHOD URL [curl options...]: sets code (000 when no answer) and body. Its stdin is the
# request body when there is one. curl runs in the background, so a signal ends the wait at once.
request() {
  local method=$1 url=$2
  shift 2
  curl -sS "${tls[@]}" --connect-timeout 5 --max-time $((@WAIT@ + 15)) -X "$method" "$@" \
    -o "$scratch/body" -w '%{http_code}' "$url" >"$scratch/code" 2>"$scratch/error" <&0 &
  child=$!
  wait "$child"
  child=""
  code=$(<"$scratch/code") body=""
  if [[ -s $scratch/body ]]; then body=$(<"$scratch/body"); fi
  rm -f "$scratch/body"
  [[ -n $code ]] || code=000
}

field() { jq -r --arg f "$1" '.[$f] // empty | tostring' <<<"$body" 2>/dev/null || true; }

for ((try = 1; ; try++)); do
  request POST "$runners" -H 'Content-Type: text/plain' --data-binary @- < <(printf '%s' "$config")
  case $code in
    201) break ;;
    4??)
      msg=$(field message)
      echo "Failed to connect the runner: HTTP $code: ${msg:-$body}"
      exit 1
      ;;
  esac
  if ((try >= 30)); then
    echo "Failed to connect the runner: no answer from $runners (HTTP $code): $(<"$scratch/error")"
    exit 1
  fi
  sleep 1
done
config=""
name=$(field name)
id=$(field id)
if [[ -z $name ]]; then
  echo "Failed to connect the runner: no runner name in the answer: $body"
  exit 1
fi
echo "Connected to GitHub as runner $name (id $id)"
echo "Current runner version: '2.331.0'"
say "Listening for Jobs"
runner=$runners/$(jq -rn --arg n "$name" '$n | @uri')

# await URL FIELD: long-polls URL until 200 and sets answer to FIELD of the answer.
await() {
  local url=$1 failing=0
  while :; do
    request GET "$url?wait=@WAIT@" </dev/null
    case $code in
      200)
        answer=$(field "$2")
        return 0
        ;;
      204) failing=0 ;;
      404)
        say "Runner $name was removed"
        return 1
        ;;
      *)
        if ((!failing)); then say "Lost the connection to GitHub (HTTP $code); retrying"; fi
        failing=1
        sleep 1
        ;;
    esac
  done
}

await "$runner/job" name || exit 1
job=$answer
say "Running job: $job"
await "$runner/done" conclusion || exit 1
say "Job $job completed with result: $answer"
exit 0
`
