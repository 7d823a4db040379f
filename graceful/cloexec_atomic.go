//go:build unix && !darwin && !aix

package graceful

import "golang.org/x/sys/unix"

// Where the kernel can create a descriptor close-on-exec in the same call,
// no process started meanwhile can inherit it.

func dupCloexec(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }

func socketpairCloexec() ([2]int, error) {
	return unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
}
