#!/usr/bin/env bash
# with-world.sh CMD... runs CMD inside the local world and tears the world down afterwards:
#   1. starts moto_server on a free loopback port (AWS: EC2, SQS, DynamoDB, SSM, Secrets Manager, ...);
#   2. waits until it answers, and fails loudly when it does not within 30 s;
#   3. exports AWS_ENDPOINT_URL, dummy credentials and SPOTRUNNER_WORLD=1, so that tests which need
#      the world fail (never skip) when it is missing;
#   4. runs CMD and returns its exit code; moto is stopped on every exit path.
# The GHES simulator is Go and is started in-process by the tests that use it.
# Nothing here listens on, or talks to, anything but 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv/bin ] && export PATH="$PWD/.venv/bin:$PATH"

command -v moto_server >/dev/null || { echo "with-world: moto_server not found; run scripts/deps.sh" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp -t moto.XXXXXX.log)
moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

endpoint="http://127.0.0.1:$port"
for _ in $(seq 1 300); do
  if curl -fs -o /dev/null "$endpoint/moto-api/" 2>/dev/null; then break; fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "with-world: moto_server exited at start:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 0.1
done
curl -fsS -o /dev/null "$endpoint/moto-api/" || { echo "with-world: moto_server did not answer on $endpoint" >&2; cat "$log" >&2; exit 1; }
echo "with-world: moto on $endpoint"

export AWS_ENDPOINT_URL="$endpoint"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export SPOTRUNNER_WORLD=1
set +e
"$@"
rc=$?
set -e
exit "$rc"
