//go:build !linux

package haproxy

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
