#!/usr/bin/env bash
# deploy-offline.sh walks `sam deploy --guided` for the app stack (template.yaml, SpotRunnerStack)
# with no AWS account and no network, to show that every prompt has a usable default (the App id
# is the only answer typed) and how far a deploy gets before it needs real AWS:
#   1. it re-runs itself in a new user and network namespace (unshare -rn) that holds only the
#      loopback interface, and refuses to go on when anything but `lo` is there: nothing it starts
#      can reach anything but 127.0.0.1. Proxies are unset, credentials are dummies, telemetry is
#      off, and every AWS call goes to moto_server on a free loopback port (AWS_ENDPOINT_URL);
#   2. it stands in for SpotRunnerFoundationStack: the three SSM parameters the app stack's
#      parameters default to (/spotrunner/SpotRunnerFoundationStack/PrivateKeySecretArn,
#      .../RunnerSubnetIds, .../RunnerSecurityGroupId). It tries, in order:
#        a. sam/foundation.yaml itself, through moto's CloudFormation;
#        b. the same template with what moto's CloudFormation lacks done beforehand: Fn::Cidr
#           evaluated from the VpcCidr default, and the AWS::SecretsManager::Secret (no
#           CloudFormation model in moto) created with the Secrets Manager API under its name, its
#           Ref replaced by that ARN. Everything else, the SSM parameters included, is the
#           foundation's own, so their names, types and values are the ones it writes;
#        c. by hand: a VPC, two subnets, a security group, a secret and the three parameters;
#      and checks that each parameter names something that exists;
#   3. it copies the working tree (git's tracked and unignored files: no venvs, node_modules or
#      .aws-sam) to a temporary directory and runs there `sam build` (offline; Go's module and
#      build caches) and `sam deploy --guided` under a small pty driver that answers the App id
#      (GITHUB_APP_ID, default 123456) at "Parameter GitHubAppId" and Enter at every other prompt,
#      so the guided run may rewrite the copy's samconfig.toml, never the checkout's. At "Deploy
#      this changeset?" Enter means No; DEPLOY_OFFLINE_CONFIRM=y answers y there instead, to see
#      moto's CloudFormation execute it (it stops at its first failing resource, without rollback
#      or per-resource events: sam prints the error, the summary the stack's state). sam's managed
#      stack is created beforehand (moto gives stacks made by change sets no Outputs, see below),
#      unless DEPLOY_OFFLINE_MANAGED_STACK=sam;
#   4. it writes the transcript (prompts with the answers as typed, ANSI escapes stripped) to
#      TRANSCRIPT (default /tmp/spotrunner-deploy-offline.transcript) and a summary of the prompts
#      after it; moto and the temporary directory go on every exit path.
# Its exit code is sam deploy's: non-zero where the deploy needs something moto does not do.
# Usage: scripts/deploy-offline.sh
#   (env: GITHUB_APP_ID, DEPLOY_OFFLINE_CONFIRM, DEPLOY_OFFLINE_MANAGED_STACK, TRANSCRIPT)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
self="$repo/scripts/deploy-offline.sh"

# --- 1. a network namespace with loopback only --------------------------------------------------
if [ "${SPOTRUNNER_DEPLOY_OFFLINE_NS:-}" != 1 ]; then
  command -v unshare >/dev/null || { echo "deploy-offline: unshare not found; refusing to run outside a loopback-only namespace" >&2; exit 1; }
  export SPOTRUNNER_DEPLOY_OFFLINE_NS=1
  exec unshare --user --map-root-user --net -- bash "$self" "$@"
fi
# Whatever brought us here (the variable above can be set by anyone), check the namespace itself:
# /proc/net/dev lists the interfaces of the reading process's network namespace.
ifaces=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1 }' /proc/net/dev | sort | tr '\n' ' ')
if [ "$ifaces" != "lo " ]; then
  echo "deploy-offline: this network namespace has interfaces '$ifaces', not loopback only; refusing to run" >&2
  exit 1
fi
ip link set lo up
unset http_proxy https_proxy ftp_proxy all_proxy no_proxy HTTP_PROXY HTTPS_PROXY FTP_PROXY ALL_PROXY NO_PROXY
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_CREDENTIALS_RELATIVE_URI

cd "$repo"
sam="$repo/.venv-sam/bin/sam"
[ -x "$sam" ] || sam=$(command -v sam || true)
[ -n "$sam" ] || { echo "deploy-offline: sam not found; run scripts/deps.sh" >&2; exit 1; }
command -v moto_server >/dev/null || { echo "deploy-offline: moto_server not found; run scripts/deps.sh" >&2; exit 1; }
command -v aws >/dev/null || { echo "deploy-offline: aws (awscli) not found; run scripts/deps.sh" >&2; exit 1; }
# sam's venv has cfn-lint, whose decoder reads CloudFormation YAML (short-form tags) for step 2b.
sam_python="$(dirname "$sam")/python"
[ -x "$sam_python" ] || sam_python=python3

app_id=${GITHUB_APP_ID:-123456}
confirm=${DEPLOY_OFFLINE_CONFIRM:-}
transcript=${TRANSCRIPT:-/tmp/spotrunner-deploy-offline.transcript}
rm -f "$transcript" # never leave a previous run's transcript for this one's
foundation_stack=SpotRunnerFoundationStack

work=$(mktemp -d -t spotrunner-deploy-offline.XXXXXX)
moto_pid=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  if [ -n "$moto_pid" ]; then
    kill "$moto_pid" 2>/dev/null || true
    wait "$moto_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- moto on loopback ----------------------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint="http://127.0.0.1:$port"
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 300); do
  if curl -fs -o /dev/null "$endpoint/moto-api/" 2>/dev/null; then break; fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "deploy-offline: moto_server exited at start:" >&2; cat "$work/moto.log" >&2; exit 1
  fi
  sleep 0.1
done
curl -fsS -o /dev/null "$endpoint/moto-api/" || { echo "deploy-offline: moto_server did not answer on $endpoint" >&2; cat "$work/moto.log" >&2; exit 1; }
echo "deploy-offline: moto on $endpoint (network namespace: lo only)"

# No profile, config or credentials of the machine's: only these.
printf '[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n' >"$work/aws-config"
: >"$work/aws-credentials"
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
export AWS_ENDPOINT_URL="$endpoint"
# S3 alone as localhost (the same 127.0.0.1, /etc/hosts): sam gives CloudFormation the template as
# TemplateURL <S3 endpoint>/<bucket>/<key>, and moto's CloudFormation reads a path-style URL only
# when it says localhost (or *amazonaws.com); with 127.0.0.1 it takes "127" for the bucket and
# CreateChangeSet fails with NoSuchBucket.
export AWS_ENDPOINT_URL_S3="http://localhost:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
export SAM_CLI_TELEMETRY=0
# Go builds from its caches only (sam build runs make, which runs go build).
export GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local

moto_reset() { curl -fsS -X POST -o /dev/null "$endpoint/moto-api/reset"; }

# --- 2. SpotRunnerFoundationStack's SSM parameters ----------------------------------------------
foundation_how=
echo "deploy-offline: foundation (a): aws cloudformation deploy sam/foundation.yaml into moto"
if aws cloudformation deploy --template-file sam/foundation.yaml --stack-name "$foundation_stack" \
  --no-fail-on-empty-changeset >"$work/foundation-a.log" 2>&1; then
  foundation_how="sam/foundation.yaml as is"
else
  # Expected with moto 5.2: its CloudFormation has no Fn::Cidr (the subnets' CidrBlock), and
  # the execute fails with an internal error (KeyError in Fn::Select over the unevaluated Cidr).
  sed 's/^/  | /' "$work/foundation-a.log"
  grep -E 'KeyError|Error|not supported' "$work/moto.log" | grep -v '^127.0.0.1' | tail -3 | sed 's/^/  | moto: /' || true
  moto_reset

  echo "deploy-offline: foundation (b): sam/foundation.yaml with Fn::Cidr evaluated and the secret made by the Secrets Manager API"
  # moto's CloudFormation has no model for AWS::SecretsManager::Secret: its Ref comes out empty
  # and the PrivateKeySecretArn parameter fails ("Value '' ... length greater than or equal to 1").
  # The secret is created the way the foundation creates it: a name and no value.
  if secret_arn=$(aws secretsmanager create-secret --name "$foundation_stack-github-app-private-key" \
      --description "GitHub App private key (deploy-offline stand-in)" --query ARN --output text 2>"$work/foundation-b.log") &&
    "$sam_python" - sam/foundation.yaml "PrivateKeySecret=$secret_arn" >"$work/foundation-b.json" 2>>"$work/foundation-b.log" <<'PY' &&
import ipaddress, json, sys
from cfnlint.decode import decode

template, matches = decode(sys.argv[1])
if template is None:
    sys.exit(f"cannot read {sys.argv[1]}: {matches}")
secrets = dict(arg.split("=", 1) for arg in sys.argv[2:])  # logical id -> ARN of the secret made by hand
defaults = {k: v.get("Default") for k, v in template.get("Parameters", {}).items()}

def value(x):
    return defaults[x["Ref"]] if isinstance(x, dict) and set(x) == {"Ref"} else x

def rewrite(x):
    if isinstance(x, dict):
        if set(x) == {"Fn::Cidr"}:
            block, count, bits = (value(v) for v in x["Fn::Cidr"])
            net = ipaddress.ip_network(block)
            return [str(s) for s in list(net.subnets(new_prefix=net.max_prefixlen - int(bits)))[: int(count)]]
        if set(x) == {"Ref"} and x["Ref"] in secrets:
            return secrets[x["Ref"]]
        return {k: rewrite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [rewrite(v) for v in x]
    if isinstance(x, str):
        for logical_id, arn in secrets.items():
            x = x.replace("${%s}" % logical_id, arn)
    return x

for logical_id in secrets:
    del template["Resources"][logical_id]
template["Resources"] = rewrite(template["Resources"])
template["Outputs"] = rewrite(template.get("Outputs", {}))
json.dump(template, sys.stdout, indent=1, default=str)
PY
    aws cloudformation deploy --template-file "$work/foundation-b.json" --stack-name "$foundation_stack" \
      --no-fail-on-empty-changeset >>"$work/foundation-b.log" 2>&1; then
    foundation_how="sam/foundation.yaml with Fn::Cidr evaluated and its secret made by the Secrets Manager API"
  else
    sed 's/^/  | /' "$work/foundation-b.log"
    moto_reset

    echo "deploy-offline: foundation (c): the three parameters by hand"
    vpc=$(aws ec2 create-vpc --cidr-block 10.80.0.0/16 --query Vpc.VpcId --output text)
    subnet_a=$(aws ec2 create-subnet --vpc-id "$vpc" --cidr-block 10.80.8.0/22 --availability-zone us-east-1a --query Subnet.SubnetId --output text)
    subnet_b=$(aws ec2 create-subnet --vpc-id "$vpc" --cidr-block 10.80.12.0/22 --availability-zone us-east-1b --query Subnet.SubnetId --output text)
    sg=$(aws ec2 create-security-group --vpc-id "$vpc" --group-name "$foundation_stack-runner" \
      --description "Spot Runner runners (deploy-offline stand-in)" --query GroupId --output text)
    secret_arn=$(aws secretsmanager create-secret --name "$foundation_stack-github-app-private-key" --query ARN --output text)
    aws ssm put-parameter --name "/spotrunner/$foundation_stack/PrivateKeySecretArn" --type String --value "$secret_arn" >/dev/null
    aws ssm put-parameter --name "/spotrunner/$foundation_stack/RunnerSubnetIds" --type StringList --value "$subnet_a,$subnet_b" >/dev/null
    aws ssm put-parameter --name "/spotrunner/$foundation_stack/RunnerSecurityGroupId" --type String --value "$sg" >/dev/null
    foundation_how="by hand (moto could not deploy sam/foundation.yaml, see above)"
  fi
fi
echo "deploy-offline: foundation stand-in: $foundation_how"

# Each parameter has the type the app stack's SSM parameter type needs and names what exists.
param() { aws ssm get-parameter --name "/spotrunner/$foundation_stack/$1" --query "Parameter.[Type,Value]" --output text; }
read -r t secret_arn <<<"$(param PrivateKeySecretArn)"
[ "$t" = String ] || { echo "deploy-offline: PrivateKeySecretArn is a $t, not a String" >&2; exit 1; }
aws secretsmanager describe-secret --secret-id "$secret_arn" >/dev/null
read -r t subnets <<<"$(param RunnerSubnetIds)"
[ "$t" = StringList ] || { echo "deploy-offline: RunnerSubnetIds is a $t, not a StringList" >&2; exit 1; }
IFS=, read -r -a subnet_list <<<"$subnets"
[ "${#subnet_list[@]}" = 2 ] || { echo "deploy-offline: RunnerSubnetIds holds ${#subnet_list[@]} subnets, not 2" >&2; exit 1; }
aws ec2 describe-subnets --subnet-ids "${subnet_list[@]}" --query 'Subnets[].[SubnetId,CidrBlock,AvailabilityZone]' \
  --output text >"$work/subnets.txt"
read -r t sg <<<"$(param RunnerSecurityGroupId)"
[ "$t" = String ] || { echo "deploy-offline: RunnerSecurityGroupId is a $t, not a String" >&2; exit 1; }
aws ec2 describe-security-groups --group-ids "$sg" >/dev/null
echo "deploy-offline:   PrivateKeySecretArn   = $secret_arn"
echo "deploy-offline:   RunnerSubnetIds       = $subnets"
sed 's/^/deploy-offline:     /' "$work/subnets.txt"
echo "deploy-offline:   RunnerSecurityGroupId = $sg"

# --- 3. sam build and sam deploy --guided in a copy of the working tree --------------------------
src="$work/src"
mkdir -p "$src"
# Tracked and untracked-but-not-ignored files, as they are in the working tree now.
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  if [ -e "$f" ]; then printf '%s\0' "$f"; fi
done | tar --null -T - -cf - | tar -xf - -C "$src"
echo "deploy-offline: working tree copied to $src"

cd "$src"
echo "deploy-offline: sam build"
"$sam" build

# sam's managed stack (aws-sam-cli-managed-default: the bucket for the packaged code). sam creates
# it with a CREATE change set, and moto 5.2 gives a stack made that way no Outputs (its
# execute_change_set creates the resources but never evaluates the template's Outputs), so sam
# stops with "Stack aws-sam-cli-managed-default is missing Tags and/or Outputs information". To get
# on to packaging and the app stack's change set, the stack is created here beforehand from sam's
# own template and tag, with CreateStack, which moto does evaluate outputs for; sam then finds it
# and uses its bucket. DEPLOY_OFFLINE_MANAGED_STACK=sam leaves it to sam (and shows that stop).
if [ "${DEPLOY_OFFLINE_MANAGED_STACK:-precreate}" = precreate ]; then
  "$sam_python" -c 'from samcli.lib.bootstrap.bootstrap import _get_stack_template; print(_get_stack_template())' >"$work/managed-stack.yaml"
  aws cloudformation create-stack --stack-name aws-sam-cli-managed-default --template-body "file://$work/managed-stack.yaml" \
    --tags Key=ManagedStackSource,Value=AwsSamCli --capabilities CAPABILITY_IAM >/dev/null
  aws cloudformation wait stack-create-complete --stack-name aws-sam-cli-managed-default
  echo "deploy-offline: sam's managed stack created beforehand (moto's change sets give stacks no Outputs):" \
    "$(aws cloudformation describe-stacks --stack-name aws-sam-cli-managed-default --query 'Stacks[0].Outputs[0].[OutputKey,OutputValue]' --output text)"
fi

driver=$(cat <<'PY'
# Runs a command on a pty, answering its prompts: the App id at "Parameter GitHubAppId", the
# confirm answer at "Deploy this changeset?", Enter anywhere else. A prompt is a partial line
# ending in ":" after 0.5 s of silence (click prompts; progress lines end otherwise).
import fcntl, os, pty, re, select, struct, sys, termios, time

raw_path, app_id, confirm = sys.argv[1:4]
cmd = sys.argv[4:]
ansi = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
deadline = time.monotonic() + 1800
partial, last, prompts, repeats = b"", time.monotonic(), [], 0
with open(raw_path, "wb") as raw:
    while True:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            sys.stderr.write("driver: timed out\n")
            break
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                break
            raw.write(data)
            raw.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            partial = (partial + data).rsplit(b"\n", 1)[-1]
            last = time.monotonic()
            continue
        line = ansi.sub(b"", partial).decode(errors="replace").strip("\r").strip()
        if not line.endswith(":") or time.monotonic() - last < 0.5:
            continue
        if prompts and prompts[-1][0] == line:
            repeats += 1
            if repeats >= 3:
                os.kill(pid, 9)
                sys.stderr.write(f"driver: asked {line!r} again and again; giving up\n")
                break
        else:
            repeats = 0
        if "Parameter GitHubAppId" in line:
            answer = app_id
        elif "Deploy this changeset?" in line:
            answer = confirm
        else:
            answer = ""
        prompts.append((line, answer))
        os.write(fd, answer.encode() + b"\r")
        partial = b""
_, status = os.waitpid(pid, 0)
with open(raw_path + ".prompts", "w") as out:
    for line, answer in prompts:
        out.write(f"{line}\t{answer if answer else '<Enter>'}\n")
sys.exit(os.waitstatus_to_exitcode(status))
PY
)

echo "deploy-offline: sam deploy --guided (answers: GitHubAppId=$app_id; at 'Deploy this changeset?' ${confirm:-Enter}; Enter elsewhere)"
set +e
python3 -c "$driver" "$work/transcript.raw" "$app_id" "$confirm" "$sam" deploy --guided
rc=$?
set -e

# Readable transcript: no ANSI escapes; a line rewritten in place with carriage returns (the upload
# progress) as the terminal shows it at the end; no trailing blanks.
python3 - "$work/transcript.raw" "$transcript" <<'PY'
import re, sys
text = open(sys.argv[1], "rb").read().decode(errors="replace")
text = re.sub(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]", "", text)
lines = []
for line in text.replace("\r\n", "\n").split("\n"):
    shown = [part for part in line.split("\r") if part.strip()]
    lines.append(shown[-1].rstrip() if shown else "")
open(sys.argv[2], "w").write("\n".join(lines))
PY

# shellcheck disable=SC2016 # the backticks in --query are JMESPath literals
{
  echo
  echo "=== deploy-offline summary ==="
  echo "foundation stand-in: $foundation_how"
  echo "sam deploy --guided exit code: $rc"
  echo "prompts (answer typed):"
  sed 's/^/  /' "$work/transcript.raw.prompts"
  empty=$(grep -E '\[\]:' "$work/transcript.raw.prompts" | cut -f1 | sed 's/^/  /' || true)
  echo "prompts offering an empty default ([]):"
  echo "${empty:-  none}"
  echo "template.yaml parameters with no Default at all:"
  "$sam_python" -c 'import sys; from cfnlint.decode import decode; t, _ = decode(sys.argv[1]); print("\n".join("  " + k for k, v in t["Parameters"].items() if "Default" not in v) or "  none")' template.yaml
  if grep -q 'has no authentication' "$work/transcript.raw.prompts"; then
    echo "the 'has no authentication. Is this okay?' question WAS asked"
  else
    echo "the 'has no authentication. Is this okay?' question was not asked"
  fi
  echo "samconfig.toml as the guided run saved it (the copy's; the checkout's is untouched):"
  diff -u "$repo/samconfig.toml" samconfig.toml | sed 's/^/  /' || true
  echo "stacks in moto:"
  aws cloudformation describe-stacks --query 'Stacks[].[StackName,StackStatus]' --output text 2>&1 | sed 's/^/  /' || true
  if aws cloudformation describe-stacks --stack-name SpotRunnerStack >/dev/null 2>&1; then
    echo "SpotRunnerStack's SSM-typed parameters as moto resolved them (empty until the change set runs):"
    aws cloudformation describe-stacks --stack-name SpotRunnerStack \
      --query 'Stacks[0].Parameters[?contains([`PrivateKeySecretArn`, `RunnerSubnetIds`, `RunnerSecurityGroupId`], ParameterKey)].[ParameterKey,ParameterValue]' \
      --output text | sed 's/^/  /' || true
    echo "SpotRunnerStack events other than *_COMPLETE:"
    aws cloudformation describe-stack-events --stack-name SpotRunnerStack \
      --query 'StackEvents[?!ends_with(ResourceStatus, `_COMPLETE`)].[LogicalResourceId,ResourceType,ResourceStatus,ResourceStatusReason]' \
      --output text | sed 's/^/  /' || true
  fi
  echo "moto's complaints (warnings and errors in its log, the foundation's included):"
  grep -E 'WARNING|ERROR|Error|Exception|not supported|NotImplemented' "$work/moto.log" |
    grep -v -e '^127\.0\.0\.1 - -' -e 'This is a development server' | sort | uniq -c | sort -rn | head -40 | sed 's/^/  /' || true
} | tee -a "$transcript"
echo "deploy-offline: transcript in $transcript"
exit "$rc"
