#!/usr/bin/env bash
# deps.sh installs what the tests need on a fresh machine, and nothing that is already there:
#   1. Go modules (go mod download);
#   2. npm test fixtures in testdata/octokit (GitHub's GHES OpenAPI description, real webhook payloads);
#   3. Python tools (moto[server], cfn-lint) into .venv when they are not importable already;
#   4. shellcheck from Debian's packages when it is missing.
# It fails loudly: a missing tool is an error here, never a skipped test later.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "deps: go modules"
go mod download

echo "deps: npm fixtures"
if [ ! -f testdata/octokit/node_modules/@octokit/openapi/generated/ghes-3.19.json ] ||
   [ ! -f testdata/octokit/node_modules/@octokit/webhooks-examples/api.github.com/index.json ]; then
  (cd testdata/octokit && npm ci --no-audit --no-fund --ignore-scripts)
fi

echo "deps: python tools"
if ! python3 -c 'import moto.server, flask, flask_cors, cfnlint' 2>/dev/null ||
   ! command -v moto_server >/dev/null || ! command -v cfn-lint >/dev/null; then
  if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/cfn-lint ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  fi
fi

echo "deps: shellcheck"
if ! command -v shellcheck >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
  else
    echo "deps: shellcheck is missing; install the Debian package 'shellcheck'" >&2
    exit 1
  fi
fi
echo "deps: ok"
