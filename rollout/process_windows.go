package rollout

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
)

// ProcessTarget manages local child processes in process groups of their
// own, which Windows does not have: NewProcessTarget refuses.
func processesSupported() error {
	return fmt.Errorf("%w: ProcessTarget needs Unix process groups and signals (GOOS=%s)", ErrNotSupported, runtime.GOOS)
}

const (
	sigTerm        = syscall.SIGTERM
	sigKill        = syscall.SIGKILL
	startTimeKnown = false
)

func ownGroup(*exec.Cmd)        {}
func checkOwnProcess(int) error { return nil }
func procStartTime(int) string  { return "" }

// process is never created on Windows (NewProcessTarget refuses); its
// methods exist for the portable code.
type process struct {
	pid    int
	start  string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

func (pr *process) signalGroup(syscall.Signal) {}
func (pr *process) exitedNow() bool            { return true }
func (pr *process) alive() bool                { return false }
func (pr *process) wait() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}
