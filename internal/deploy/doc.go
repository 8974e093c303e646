// Package deploy holds tests of the SAM templates against each other and against the code they
// deploy: template.yaml (the app stack), sam/foundation.yaml (the stack it runs in) and the
// services whose configuration and permissions the app stack sets.
package deploy
