#!/usr/bin/env bash
# Spot Runner user data for a bring-your-own AMI (docs/instance.md, "Bring your own AMI"). cloud-init
# runs it once, at the instance's first boot, as root, and it gives the AMI what Spot Runner's own
# images get from sam/image.yaml's BootstrapComponent and ServiceComponent:
#   1. installs the bootstrap as /usr/local/sbin/spotrunner-bootstrap (mode 0755) and its unit as
#      /etc/systemd/system/spotrunner.service (mode 0644); a file already there with the same
#      bytes and mode, owned by root, is left alone, and any other is replaced (see install_file);
#   2. systemctl daemon-reload, then enable spotrunner.service, as the image build does;
#   3. starts spotrunner.service with --no-block. Enabling a unit during boot does not add it to
#      the boot already under way, and on Ubuntu cloud-init runs user scripts after
#      multi-user.target, past the point where an enabled unit would have started; --no-block
#      because nothing here needs to wait for the bootstrap, which runs until the instance ends.
# Each step is logged to stdout with a UTC timestamp; cloud-init copies a user script's output to
# /var/log/cloud-init-output.log and, on Ubuntu, to the console (the EC2 system log).
#
# instance.UserData renders this file with instance/bootstrap.sh and instance/spotrunner.service
# in the two heredocs below, then gzips it (cloud-init decompresses gzip user data itself).
#
# Override, for tests only (production uses the default):
#   SPOTRUNNER_ROOT  the root the files are installed under (empty: /)
# Every command is looked up on PATH, so a test can put a systemctl stub first.
set -euo pipefail

readonly root=${SPOTRUNNER_ROOT:-}
readonly bootstrap=/usr/local/sbin/spotrunner-bootstrap
readonly unit=spotrunner.service
installed=""          # what install_file did last: installed, replaced or kept
bootstrap_replaced=0

log() {
  printf '%s spotrunner-userdata: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

on_exit() {
  local rc=$?
  if ((rc)); then log "FAILED (exit status $rc); $unit was not started"; fi
}
trap on_exit EXIT

# install_file PATH MODE writes stdin to PATH (under root) with MODE, unless PATH already holds
# exactly these bytes with this mode, as a regular file owned by us (root). Identical is left
# alone: nothing to gain, and its mtime keeps saying where it came from. Different is replaced:
# this user data comes from the deployed stack, so its copy matches the provisioner and the
# instance role of this deployment (tags, parameter names, permissions), while a copy baked into
# the AMI may be older; a bootstrap owned by another user or writable by others would let that
# user run code as root. The new file is written beside the old one and renamed over it, never
# rewritten in place: a bootstrap already running keeps reading the file it started with.
# Sets installed to "installed", "replaced" or "kept".
install_file() {
  local path=$1 mode=$2 dest=$root$1 tmp
  mkdir -p "${dest%/*}"
  tmp=$(mktemp "${dest%/*}/.${dest##*/}.XXXXXX")
  if ! cat >"$tmp"; then
    rm -f "$tmp"
    return 1
  fi
  if [[ -f $dest && ! -L $dest ]] && cmp -s "$tmp" "$dest" &&
    [[ $(stat -c %a:%u "$dest") == "${mode#0}:$EUID" ]]; then
    rm -f "$tmp"
    installed=kept
    log "$path: the AMI has this version (mode $mode); left as it is"
    return 0
  fi
  installed=installed
  if [[ -e $dest || -L $dest ]]; then installed=replaced; fi
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$dest"
  if [[ $installed == replaced ]]; then
    log "$path: the AMI's copy differs from this deployment's (content, mode or owner); replaced (mode $mode)"
  else
    log "$path: not in the AMI; installed (mode $mode)"
  fi
}

install_file "$bootstrap" 0755 <<'SPOTRUNNER_BOOTSTRAP_EOF'
{{.Bootstrap}}
SPOTRUNNER_BOOTSTRAP_EOF
if [[ $installed == replaced ]]; then bootstrap_replaced=1; fi

install_file "/etc/systemd/system/$unit" 0644 <<'SPOTRUNNER_UNIT_EOF'
{{.Unit}}
SPOTRUNNER_UNIT_EOF

systemctl daemon-reload
systemctl enable "$unit"
log "systemd reloaded; $unit enabled"

if systemctl is-active --quiet "$unit"; then
  # The AMI had the unit enabled, so it started at boot, before this script: starting it again
  # does nothing, and it must not be restarted (it may already have read and deleted its JIT
  # config, and stopping it shuts the instance down).
  if ((bootstrap_replaced)); then
    log "warning: $unit was already running the AMI's own bootstrap, which keeps running on this instance; rebuild the AMI to run this deployment's"
  else
    log "$unit is already running (the AMI enables it)"
  fi
fi
systemctl start --no-block "$unit"
log "$unit start queued (systemctl start --no-block)"
