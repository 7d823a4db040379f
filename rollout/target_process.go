//go:build unix

package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/atomicfile"
)

// ErrProcessExited is wrapped by ProcessTarget.Healthy when the process
// has exited: the health gate of a Rolling step fails at once instead of
// waiting for HealthTimeout.
var ErrProcessExited = errors.New("rollout: target process exited")

// DefaultStopTimeout is how long ProcessTarget waits after SIGTERM before
// SIGKILL.
const DefaultStopTimeout = 10 * time.Second

// adoptedPollInterval is how often the exit of an adopted process (not a
// child of this one, so it cannot be waited for) is checked.
const adoptedPollInterval = 20 * time.Millisecond

// ProcessTargetOptions configure NewProcessTarget. Name and Command are
// required.
type ProcessTargetOptions struct {
	// Name identifies the instance in the rollout's state and logs
	// (required). With StateDir it also names the PID file, so it must be
	// a valid file name.
	Name string
	// Command builds the command that runs version. It is code the service
	// owner writes (a binary path per version, fixed arguments); no value
	// from a request or the admin API ever reaches it. The process is
	// started in a process group of its own (SysProcAttr.Setpgid), which
	// Replace and Close signal as a whole.
	Command func(version string) *exec.Cmd
	// Health checks the running process (for example an HTTP GET of its
	// health endpoint); nil means "healthy while it runs". It is called
	// only while the process runs.
	Health func(ctx context.Context) error
	// StopTimeout is the grace between SIGTERM and SIGKILL. Zero means
	// DefaultStopTimeout.
	StopTimeout time.Duration
	// StateDir, if set, keeps a PID file per target (<Name>.pid.json) so
	// that a runner that restarts after a crash adopts the process a
	// previous runner started: Version and Healthy report it, and the next
	// Replace or Close stops its process group instead of starting a
	// second instance beside it. Use the same directory in every runner of
	// the rollout (for example beside the rollout's FileStore). Empty
	// means no PID file: the process of a dead runner is unknown to the
	// next one.
	StateDir string
}

// ProcessTarget is a Target that is a local child process: Replace stops
// the running one (SIGTERM to its process group, then SIGKILL after
// StopTimeout) and starts the command of the new version. It owns one
// goroutine per process it started, which ends when that process exits;
// Close stops the process.
//
// The processes outlive a runner that dies (no parent-death signal: the
// instances keep serving while the rollout resumes, and Go's Pdeathsig is
// tied to the OS thread that started the child, not to the process); with
// StateDir the next runner adopts them. The zero value is not usable.
type ProcessTarget struct {
	o ProcessTargetOptions

	mu      sync.Mutex // guards proc and version; held across a stop
	proc    *process
	version string
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

// pidFile is what StateDir keeps per target.
type pidFile struct {
	PID     int    `json:"pid"`
	Start   string `json:"start,omitempty"`
	Version string `json:"version"`
}

// NewProcessTarget returns a target. With StateDir it adopts the process
// that a previous runner started, if it still runs; otherwise no process
// runs and the first Replace starts one.
func NewProcessTarget(o ProcessTargetOptions) (*ProcessTarget, error) {
	if o.Name == "" || o.Command == nil {
		return nil, errors.New("rollout: ProcessTargetOptions needs Name and Command")
	}
	if o.StateDir != "" && (o.Name != filepath.Base(o.Name) || o.Name == "." || o.Name == "..") {
		return nil, fmt.Errorf("rollout: ProcessTargetOptions.Name %q cannot name a PID file in StateDir", o.Name)
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	p := &ProcessTarget{o: o}
	if err := p.adopt(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *ProcessTarget) pidPath() string {
	return filepath.Join(p.o.StateDir, p.o.Name+".pid.json")
}

// adopt loads the PID file and takes over its process if it still runs.
func (p *ProcessTarget) adopt() error {
	if p.o.StateDir == "" {
		return nil
	}
	b, err := os.ReadFile(p.pidPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rollout: %s: reading PID file: %w", p.o.Name, err)
	}
	var f pidFile
	if err := json.Unmarshal(b, &f); err != nil || f.PID <= 0 {
		return fmt.Errorf("rollout: %s: PID file %s is not valid (%v): remove it once no instance runs", p.o.Name, p.pidPath(), err)
	}
	pr := &process{pid: f.PID, start: f.Start}
	if !pr.alive() {
		return p.removePIDFile()
	}
	p.proc, p.version = pr, f.Version
	return nil
}

func (p *ProcessTarget) writePIDFile(pr *process, version string) error {
	if p.o.StateDir == "" {
		return nil
	}
	b, err := json.Marshal(pidFile{PID: pr.pid, Start: pr.start, Version: version})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p.pidPath(), b)
}

func (p *ProcessTarget) removePIDFile() error {
	if p.o.StateDir == "" {
		return nil
	}
	if err := os.Remove(p.pidPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rollout: %s: removing PID file: %w", p.o.Name, err)
	}
	return nil
}

// Name implements Target.
func (p *ProcessTarget) Name() string { return p.o.Name }

// Version returns the version of the running process, "" if none.
func (p *ProcessTarget) Version() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.version
}

// PID returns the process id of the running instance (started here or
// adopted), 0 if none.
func (p *ProcessTarget) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return 0
	}
	return p.proc.pid
}

// Replace implements Target: stop the current process (one this target
// started or adopted), start version. It is idempotent in the sense
// Target asks: whatever ran before, one instance of version runs after.
func (p *ProcessTarget) Replace(ctx context.Context, version string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stopLocked(ctx); err != nil {
		return err
	}
	cmd := p.o.Command(version)
	if cmd == nil {
		return fmt.Errorf("rollout: %s: no command for version %s", p.o.Name, version)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// A group of its own: stopping the instance reaches what it started,
	// and a signal to the runner's group (a terminal's ^C) does not reach
	// the instances.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pgid = 0
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("rollout: %s: start %s: %w", p.o.Name, version, err)
	}
	pr := &process{pid: cmd.Process.Pid, start: procStartTime(cmd.Process.Pid), cmd: cmd, exited: make(chan struct{})}
	p.proc, p.version = pr, version
	go func() {
		pr.err = cmd.Wait()
		close(pr.exited)
	}()
	if err := p.writePIDFile(pr, version); err != nil {
		// Without the file a runner that restarts would not know this
		// process: do not leave it running unrecorded.
		_ = p.stopLocked(context.WithoutCancel(ctx))
		return fmt.Errorf("rollout: %s: writing PID file: %w", p.o.Name, err)
	}
	return nil
}

// stopLocked stops the current process group: SIGTERM, then SIGKILL after
// StopTimeout or when ctx ends.
func (p *ProcessTarget) stopLocked(ctx context.Context) error {
	pr := p.proc
	if pr == nil {
		return nil
	}
	var ctxErr error
	if !pr.exitedNow() {
		done := pr.wait()
		pr.signalGroup(syscall.SIGTERM)
		t := time.NewTimer(p.o.StopTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			pr.signalGroup(syscall.SIGKILL)
			<-done
		case <-ctx.Done():
			pr.signalGroup(syscall.SIGKILL)
			<-done
			ctxErr = ctx.Err()
		}
	}
	if pr.cmd != nil {
		// The leader is gone; what it left in its group goes with it.
		pr.signalGroup(syscall.SIGKILL)
	}
	p.proc, p.version = nil, ""
	if err := p.removePIDFile(); err != nil {
		return err
	}
	return ctxErr
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

// Healthy implements Target.
func (p *ProcessTarget) Healthy(ctx context.Context) error {
	p.mu.Lock()
	pr, name, version := p.proc, p.o.Name, p.version
	p.mu.Unlock()
	if pr == nil {
		return fmt.Errorf("%s: no process running", name)
	}
	if pr.exitedNow() {
		if pr.cmd == nil {
			return fmt.Errorf("%w: %s running %s (adopted process %d)", ErrProcessExited, name, version, pr.pid)
		}
		return fmt.Errorf("%w: %s running %s: %v", ErrProcessExited, name, version, pr.err)
	}
	if p.o.Health != nil {
		return p.o.Health(ctx)
	}
	return nil
}

// Close stops the process group (SIGTERM, then SIGKILL) and removes the
// PID file; it is idempotent.
func (p *ProcessTarget) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopLocked(context.Background())
}

var _ Target = (*ProcessTarget)(nil)
