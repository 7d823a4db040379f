//go:build unix

package graceful

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// handoffSupported reports whether this platform can hand sockets to a new
// process: every Unix can.
func handoffSupported() error { return nil }

// closeOnExec keeps a descriptor from leaking into processes this one
// starts (they get what they need through startChild).
func closeOnExec(fd int) { syscall.CloseOnExec(fd) }

// dupFile duplicates a socket's descriptor for passing to a new process,
// through SyscallConn so the original stays non-blocking.
func dupFile(c syscall.Conn, k fileKey) (*os.File, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var derr error
	if err := raw.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup %s: %w", k, derr)
	}
	return os.NewFile(uintptr(nfd), k.String()), nil
}

// dupStderr makes f this process's descriptor 2.
func dupStderr(f *os.File) error { return unix.Dup3(int(f.Fd()), 2, 0) }
