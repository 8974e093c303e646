//go:build !linux

package lambdasim

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// runtimesOf finds nothing where there is no /proc: a runtime left by a crashed emulator ends
// itself when its invocation does (its next call to the runtime API fails).
func runtimesOf(bootstrap, api string) []int { return nil }
