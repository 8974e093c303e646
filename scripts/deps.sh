#!/usr/bin/env bash
# deps.sh installs what the tests need on a fresh machine, and nothing that is already there:
#   1. Go modules (go mod download);
#   2. npm test fixtures in testdata/octokit (GitHub's GHES OpenAPI description, real webhook payloads);
#   3. Python tools (moto[server], cfn-lint, awscli) into .venv when they are not there already,
#      and the deployment checks (make validate) each into its own venv, their pins conflicting:
#      aws-sam-cli into .venv-sam, checkov into .venv-checkov, when sam/checkov are not on PATH;
#   4. shellcheck and jq from Debian's packages when they are missing;
#   5. aws-lambda-rie (the Lambda Runtime Interface Emulator, from the Go module proxy) into
#      .cache/bin, for the end-to-end suite and make demo.
# It fails loudly: a missing tool is an error here, never a skipped test later.
#
# Usage: scripts/deps.sh           everything make test needs
#        scripts/deps.sh --world   only what the local world and make demo need (1, 3 without the
#                                  deployment checks, 4, 5)
set -euo pipefail
world_only=0
[ "${1:-}" = --world ] && world_only=1
cd "$(dirname "$0")/.."

echo "deps: go modules"
go mod download

echo "deps: aws-lambda-rie"
rie_version=v0.0.0-20261030222936-bef5c4ba774d # internal/lambdasim.RIEVersion; LookRIE refuses any other
if ! go version -m .cache/bin/aws-lambda-rie 2>/dev/null | grep -q "$rie_version"; then
  GOBIN="$PWD/.cache/bin" CGO_ENABLED=0 go install "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$rie_version"
fi

if ((!world_only)); then
echo "deps: npm fixtures"
if [ ! -f testdata/octokit/node_modules/@octokit/openapi/generated/ghes-3.19.json ] ||
   [ ! -f testdata/octokit/node_modules/@octokit/webhooks-examples/api.github.com/index.json ]; then
  (cd testdata/octokit && npm ci --no-audit --no-fund --ignore-scripts)
fi
fi

echo "deps: python tools"
if ! python3 -c 'import moto.server, flask, flask_cors, cfnlint' 2>/dev/null ||
   ! command -v moto_server >/dev/null || ! command -v cfn-lint >/dev/null || ! command -v aws >/dev/null; then
  if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/cfn-lint ] || [ ! -x .venv/bin/aws ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  fi
fi

# Created once, and only when the tool is not on PATH; the Makefile runs the venv's when it exists.
venv_tool() { # venv_tool <command> <venv> <requirements file>
  if ! command -v "$1" >/dev/null && [ ! -x "$2/bin/$1" ]; then
    echo "deps: $1 into $2"
    python3 -m venv "$2"
    "$2/bin/pip" install --quiet --disable-pip-version-check -r "$3"
  fi
}
if ((!world_only)); then
  venv_tool sam .venv-sam requirements-sam.txt
  venv_tool checkov .venv-checkov requirements-checkov.txt
fi

echo "deps: shellcheck, jq"
missing=()
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v jq >/dev/null || missing+=(jq)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "deps: missing ${missing[*]}; install the Debian packages" >&2
    exit 1
  fi
fi
echo "deps: ok"
