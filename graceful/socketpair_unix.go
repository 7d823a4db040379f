//go:build unix

package graceful

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// socketpair returns the parent's and the child's end of a control socket.
func socketpair() (parent net.Conn, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
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
