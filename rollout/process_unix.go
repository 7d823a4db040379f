//go:build unix

package rollout

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

const (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
)

// startTimeKnown says whether /proc gives a process's start time, which
// tells a process from a later one that reused its pid. Elsewhere a PID
// file carries none and adoption trusts the pid (a known limit).
const startTimeKnown = runtime.GOOS == "linux"

func processesSupported() error { return nil }

// ownGroup starts cmd in a process group of its own: stopping the
// instance reaches what it started, and a signal to the runner's group (a
// terminal's ^C) does not reach the instances.
func ownGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pgid = 0
}

// checkOwnProcess refuses to adopt a process of another user (where /proc
// tells the owner): a PID file is no reason to signal someone else's
// processes, even for root.
func checkOwnProcess(pid int) error {
	fi, err := os.Stat("/proc/" + strconv.Itoa(pid))
	if err != nil {
		return nil // no /proc: the kill below fails with EPERM for another user
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("process %d belongs to uid %d, not to this process's uid %d", pid, st.Uid, os.Geteuid())
	}
	return nil
}

// process is one running instance: a child started here (cmd set; err is
// written before exited is closed and read only after, so it needs no
// lock), or one adopted from a PID file (cmd nil).
type process struct {
	pid    int
	start  string // identity against PID reuse (see procStartTime)
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// signalGroup signals the process group the instance leads (Replace
// starts every instance as a group leader). The kernel does not reuse a
// pid while a group of that id exists, so the group may be signalled after
// its leader is gone. An adopted instance whose leader is gone is not
// signalled: its pid may have been reused since it was checked.
func (pr *process) signalGroup(sig syscall.Signal) {
	if pr.cmd == nil && !pr.alive() {
		return
	}
	_ = syscall.Kill(-pr.pid, sig)
}

// exitedNow reports whether the process has exited.
func (pr *process) exitedNow() bool {
	if pr.cmd != nil {
		select {
		case <-pr.exited:
			return true
		default:
			return false
		}
	}
	return !pr.alive()
}

// wait returns a channel closed when the process has exited. For an
// adopted process, which is not a child and cannot be waited for, it
// polls.
func (pr *process) wait() <-chan struct{} {
	if pr.cmd != nil {
		return pr.exited
	}
	ch := make(chan struct{})
	go func() { // ends when the process does; stopLocked always sends SIGKILL eventually
		defer close(ch)
		t := time.NewTicker(adoptedPollInterval)
		defer t.Stop()
		for pr.alive() {
			<-t.C
		}
	}()
	return ch
}

// alive reports whether pid runs and is still the process recorded (its
// start time matches, where the platform tells it); a zombie is not alive.
func (pr *process) alive() bool {
	if err := syscall.Kill(pr.pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pr.pid) + "/stat")
	if err != nil {
		// No /proc (not Linux): signal 0 is all there is.
		return !errors.Is(err, fs.ErrNotExist) || pr.start == ""
	}
	state, start := statFields(st)
	if state == "Z" || state == "X" {
		return false
	}
	return pr.start == "" || start == pr.start
}

// procStartTime returns the start time of pid in clock ticks since boot
// (field 22 of /proc/<pid>/stat), "" where /proc does not exist.
func procStartTime(pid int) string {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	_, start := statFields(st)
	return start
}

// statFields returns the state (field 3) and start time (field 22) of a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from its last ')'.
func statFields(st []byte) (state, start string) {
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return "", ""
	}
	f := bytes.Fields(st[i+1:])
	if len(f) < 20 {
		return "", ""
	}
	return string(f[0]), string(f[19])
}
