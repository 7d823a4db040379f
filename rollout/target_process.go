package rollout

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ErrProcessExited is wrapped by ProcessTarget.Healthy when the process
// has exited: the health gate of a Rolling step fails at once instead of
// waiting for HealthTimeout.
var ErrProcessExited = errors.New("rollout: target process exited")

// DefaultStopTimeout is how long ProcessTarget waits after SIGTERM before
// SIGKILL.
const DefaultStopTimeout = 10 * time.Second

// ProcessTargetOptions configure NewProcessTarget. Name and Command are
// required.
type ProcessTargetOptions struct {
	// Name identifies the instance in the rollout's state and logs
	// (required).
	Name string
	// Command builds the command that runs version. It is code the service
	// owner writes (a binary path per version, fixed arguments); no value
	// from a request or the admin API ever reaches it.
	Command func(version string) *exec.Cmd
	// Health checks the running process (for example an HTTP GET of its
	// health endpoint); nil means "healthy while it runs". It is called
	// only while the process runs.
	Health func(ctx context.Context) error
	// StopTimeout is the grace between SIGTERM and SIGKILL. Zero means
	// DefaultStopTimeout.
	StopTimeout time.Duration
}

// ProcessTarget is a Target that is a local child process: Replace stops
// the running one (SIGTERM, then SIGKILL after StopTimeout) and starts
// the command of the new version. It owns one goroutine per process it
// started, which ends when that process exits; Close stops the process.
// The zero value is not usable.
type ProcessTarget struct {
	o ProcessTargetOptions

	mu      sync.Mutex // guards proc and version; held across a stop
	proc    *process
	version string
}

// process is one started child; err is written before exited is closed
// and read only after, so it needs no lock.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// NewProcessTarget returns a target with no process running; the first
// Replace starts one.
func NewProcessTarget(o ProcessTargetOptions) (*ProcessTarget, error) {
	if o.Name == "" || o.Command == nil {
		return nil, errors.New("rollout: ProcessTargetOptions needs Name and Command")
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	return &ProcessTarget{o: o}, nil
}

// Name implements Target.
func (p *ProcessTarget) Name() string { return p.o.Name }

// Version returns the version of the running process, "" if none.
func (p *ProcessTarget) Version() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.version
}

// Replace implements Target: stop the current process, start version.
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
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("rollout: %s: start %s: %w", p.o.Name, version, err)
	}
	pr := &process{cmd: cmd, exited: make(chan struct{})}
	p.proc, p.version = pr, version
	go func() {
		pr.err = cmd.Wait()
		close(pr.exited)
	}()
	return nil
}

func (p *ProcessTarget) stopLocked(ctx context.Context) error {
	if p.proc == nil {
		return nil
	}
	cmd, exited := p.proc.cmd, p.proc.exited
	select {
	case <-exited:
	default:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(p.o.StopTimeout)
		defer t.Stop()
		select {
		case <-exited:
		case <-t.C:
			_ = cmd.Process.Kill()
			<-exited
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-exited
			return ctx.Err()
		}
	}
	p.proc, p.version = nil, ""
	return nil
}

// Healthy implements Target.
func (p *ProcessTarget) Healthy(ctx context.Context) error {
	p.mu.Lock()
	pr, name, version := p.proc, p.o.Name, p.version
	p.mu.Unlock()
	if pr == nil {
		return fmt.Errorf("%s: no process running", name)
	}
	select {
	case <-pr.exited:
		return fmt.Errorf("%w: %s running %s: %v", ErrProcessExited, name, version, pr.err)
	default:
	}
	if p.o.Health != nil {
		return p.o.Health(ctx)
	}
	return nil
}

// Close stops the process (SIGTERM, then SIGKILL); it is idempotent.
func (p *ProcessTarget) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopLocked(context.Background())
}

var _ Target = (*ProcessTarget)(nil)
