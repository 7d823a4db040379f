//go:build darwin || aix

package graceful

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// darwin has no SOCK_CLOEXEC (and aix no F_DUPFD_CLOEXEC either): the
// descriptor is created, then marked close-on-exec, under syscall.ForkLock,
// which os.StartProcess holds while it forks, so no process started
// meanwhile inherits it. This is what the standard library does on these
// systems.

func dupCloexec(fd int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	nfd, err := unix.Dup(fd)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(nfd)
	return nfd, nil
}

func socketpairCloexec() ([2]int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return fds, err
	}
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	return fds, nil
}
