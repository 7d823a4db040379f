//go:build unix

package testchild

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Gone reports whether process pid has exited: it no longer exists, or it
// is a zombie (exited, not yet reaped; /proc tells it where there is one).
func Gone(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false // no /proc: signal 0 said it exists
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}
