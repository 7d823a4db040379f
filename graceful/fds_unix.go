//go:build unix

package graceful

import (
	"fmt"
	"net"
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

// dupFile duplicates a socket's descriptor, close-on-exec, for passing to
// a new process, through SyscallConn so the original stays non-blocking.
func dupFile(c syscall.Conn, k fileKey) (*os.File, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var derr error
	if err := raw.Control(func(fd uintptr) { nfd, derr = dupCloexec(int(fd)) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup %s: %w", k, derr)
	}
	return os.NewFile(uintptr(nfd), k.String()), nil
}

// dupStderr makes f this process's descriptor 2 (which dup2 leaves
// inheritable, as standard error must be).
func dupStderr(f *os.File) error { return unix.Dup2(int(f.Fd()), 2) }

// socketpair returns the parent's end of a control socket as a net.Conn
// and the child's as a file, both close-on-exec (the child's end is passed
// explicitly by startChild).
func socketpair() (parent net.Conn, child *os.File, err error) {
	fds, err := socketpairCloexec()
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	pf := os.NewFile(uintptr(fds[0]), "graceful-control")
	defer pf.Close()
	parent, err = net.FileConn(pf)
	if err != nil {
		_ = unix.Close(fds[1])
		return nil, nil, err
	}
	return parent, os.NewFile(uintptr(fds[1]), "graceful-control-child"), nil
}
