package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/batonhq/baton/internal/atomicfile"
)

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
	if err := processesSupported(); err != nil {
		return nil, err
	}
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
	fh, err := openNoFollow(p.pidPath(), os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rollout: %s: reading PID file: %w", p.o.Name, err)
	}
	defer fh.Close()
	refuse := func(why string) error {
		return fmt.Errorf("rollout: %s: refusing PID file %s: %s; remove it once no instance runs", p.o.Name, p.pidPath(), why)
	}
	fi, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("rollout: %s: reading PID file: %w", p.o.Name, err)
	}
	if err := checkPrivate(p.pidPath(), fi); err != nil {
		// Whoever can write it chooses which process group Replace kills.
		return refuse(err.Error())
	}
	b, err := io.ReadAll(io.LimitReader(fh, 4096))
	if err != nil {
		return fmt.Errorf("rollout: %s: reading PID file: %w", p.o.Name, err)
	}
	var f pidFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil || f.PID <= 1 {
		return refuse(fmt.Sprintf("not valid (%v)", err))
	}
	if f.Start == "" && startTimeKnown {
		// Without its start time the file names any process that reuses
		// the pid, and the next Replace would kill that one's group.
		return refuse("it has no start time, so the process it names cannot be told from one that reused its pid")
	}
	pr := &process{pid: f.PID, start: f.Start}
	if !pr.alive() {
		return p.removePIDFile()
	}
	if err := checkOwnProcess(f.PID); err != nil {
		return refuse(err.Error())
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
	ownGroup(cmd)
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
		pr.signalGroup(sigTerm)
		t := time.NewTimer(p.o.StopTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			pr.signalGroup(sigKill)
			<-done
		case <-ctx.Done():
			pr.signalGroup(sigKill)
			<-done
			ctxErr = ctx.Err()
		}
	}
	if pr.cmd != nil {
		// The leader is gone; what it left in its group goes with it.
		pr.signalGroup(sigKill)
	}
	p.proc, p.version = nil, ""
	if err := p.removePIDFile(); err != nil {
		return err
	}
	return ctxErr
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
