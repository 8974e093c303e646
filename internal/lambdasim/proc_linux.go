package lambdasim

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// sysProcAttr starts aws-lambda-rie in its own process group, so that it and what it starts can
// be signalled together, and has the kernel send it SIGTERM (which makes it stop its runtime)
// should this process die without closing it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// runtimesOf returns the processes running bootstrap with AWS_LAMBDA_RUNTIME_API=api: the
// runtime an emulator started. The emulator starts it in a process group of its own, and it
// outlives an emulator that crashed, so it is found by what it runs and whom it talks to.
func runtimesOf(bootstrap, api string) []int {
	want, err := filepath.EvalSymlinks(bootstrap)
	if err != nil {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	needle := []byte("AWS_LAMBDA_RUNTIME_API=" + api + "\x00")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if exe, err := os.Readlink(filepath.Join(dir, "exe")); err != nil || exe != want {
			continue
		}
		environ, err := os.ReadFile(filepath.Join(dir, "environ"))
		if err == nil && bytes.Contains(append(environ, 0), needle) {
			out = append(out, pid)
		}
	}
	return out
}
