//go:build unix

package haproxy

import (
	"os"
	"syscall"
)

var (
	softStop os.Signal = syscall.SIGUSR1
	hardStop os.Signal = syscall.SIGTERM
)
