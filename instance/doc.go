// Package instance is the EC2 side of Spot Runner: the bootstrap that turns a booted runner
// instance into a one-job GitHub Actions runner and then shuts it down (bootstrap.sh, installed
// as /usr/local/sbin/spotrunner-bootstrap), and its systemd unit (spotrunner.service). Both are
// baked into the preset images by the Image Builder components of sam/image.yaml, which carry
// them byte for byte.
//
// Its one function, UserData, is the launch template's user data for a preset that brings its own
// AMI: userdata.sh with both files inside, gzipped, which installs and starts them at first boot.
//
// Its tests check the scripts with shellcheck, run
// the bootstrap against a fake IMDSv2 and the local world's SSM, and check the component
// documents and launch template of sam/image.yaml. How an instance becomes a runner, and what a
// bring-your-own AMI must provide: docs/instance.md.
package instance
