//go:build !unix

package graceful

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
)

// Without Unix descriptor passing there is no handoff: Listen, the drain,
// Ready, Health and Shutdown work, and UpgradeWith, Promote and Rollback
// fail with ErrNotSupported.

func handoffSupported() error {
	return fmt.Errorf("%w: socket handoff to a new process needs Unix descriptor passing, which %s lacks", ErrNotSupported, runtime.GOOS)
}

func closeOnExec(int) {}

// dupFile keeps nothing to hand down.
func dupFile(syscall.Conn, fileKey) (*os.File, error) { return nil, nil }

func dupStderr(*os.File) error { return nil }

func socketpair() (net.Conn, *os.File, error) { return nil, nil, handoffSupported() }
