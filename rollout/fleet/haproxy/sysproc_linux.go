package haproxy

import "syscall"

// HAProxy dies with the process that started it, so that a test binary
// killed by a timeout leaves no load balancer behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
