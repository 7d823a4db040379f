package haproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// DefaultStartTimeout bounds Start's wait for the admin socket when the
// context has no deadline.
const DefaultStartTimeout = 15 * time.Second

// Process is an HAProxy started by Start, in the foreground (-db), with
// its own configuration in Config.Dir. Its zero value is not usable. The
// process is the Process's: Close or Shutdown stops it and waits for it;
// on Linux it is also killed when the Go process that started it dies.
type Process struct {
	cmd    *exec.Cmd
	client *Client
	sock   string
	logf   string
	addrs  map[string]string
	done   chan struct{}
	err    error // the exit status, set before done closes
	once   sync.Once
	tmp    string // the directory Start made, removed once HAProxy exited
}

// Start writes c's configuration to c.Dir/haproxy.cfg, binds the
// backends' addresses, starts HAProxy on them and returns once its admin
// socket answers. When ctx ends first, or HAProxy exits, the process is
// stopped and the error carries the end of its output.
func Start(ctx context.Context, c Config) (*Process, error) {
	if runtime.GOOS == "windows" {
		return nil, errors.New("haproxy: Start needs a unix system")
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	bin := c.Binary
	if bin == "" {
		var err error
		if bin, err = Find(); err != nil {
			return nil, err
		}
	}
	var tmp string
	if c.Dir == "" {
		var err error
		if tmp, err = os.MkdirTemp("", "haproxy"); err != nil {
			return nil, fmt.Errorf("haproxy: %w", err)
		}
		c.Dir = tmp
	}
	started := false
	defer func() {
		if !started && tmp != "" {
			_ = os.RemoveAll(tmp)
		}
	}()
	p := &Process{
		tmp:   tmp,
		sock:  filepath.Join(c.Dir, "admin.sock"),
		logf:  filepath.Join(c.Dir, "haproxy.log"),
		addrs: map[string]string{},
		done:  make(chan struct{}),
	}
	// The listening sockets are made here and inherited (bind fd@N): the
	// port is known before HAProxy runs and nobody can take it between.
	binds := make([]string, len(c.Backends))
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for i, b := range c.Backends {
		addr := b.Listen
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("haproxy: backend %s: %w", b.Name, err)
		}
		f, err := ln.(*net.TCPListener).File()
		ln.Close()
		if err != nil {
			return nil, fmt.Errorf("haproxy: backend %s: %w", b.Name, err)
		}
		files = append(files, f)
		p.addrs[b.Name] = ln.Addr().String()
		binds[i] = fmt.Sprintf("fd@%d", 3+i)
	}
	text, err := c.Render(p.sock, binds)
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(c.Dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	_ = os.Remove(p.sock) // a previous run's
	logFile, err := os.OpenFile(p.logf, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("haproxy: %w", err)
	}
	defer logFile.Close()
	p.cmd = exec.Command(bin, "-db", "-f", cfg)
	p.cmd.Dir = c.Dir
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.ExtraFiles = files
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("haproxy: start %s: %w", bin, err)
	}
	started = true
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if p.client, err = NewClient(p.sock, ClientOptions{Timeout: time.Second}); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.awaitSocket(ctx); err != nil {
		out := p.output()
		p.Close()
		return nil, fmt.Errorf("%w; haproxy's output: %s", err, out)
	}
	return p, nil
}

func (p *Process) removeTmp() {
	if p.tmp != "" {
		_ = os.RemoveAll(p.tmp)
	}
}

func (p *Process) awaitSocket(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStartTimeout)
		defer cancel()
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := p.client.run(ctx, "show info"); err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("haproxy: exited before its admin socket answered: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("haproxy: admin socket %s did not answer: %w", p.sock, ctx.Err())
		case <-t.C:
		}
	}
}

// output returns the end of HAProxy's output, for errors.
func (p *Process) output() string {
	b, _ := os.ReadFile(p.logf)
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return "(none)"
	}
	return string(b)
}

// Addr returns the address clients reach backend at ("127.0.0.1:41234"),
// "" for a backend not in the Config.
func (p *Process) Addr(backend string) string { return p.addrs[backend] }

// AdminSocket returns the path of the admin socket (level admin, mode
// 0600).
func (p *Process) AdminSocket() string { return p.sock }

// Client returns a Client of the admin socket with default options.
func (p *Process) Client() *Client {
	c, _ := NewClient(p.sock, ClientOptions{})
	return c
}

// Pid returns HAProxy's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once HAProxy has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Shutdown asks HAProxy to stop softly (SIGUSR1: stop listening, finish
// the sessions in progress) and waits for it to exit (then removes the
// directory Start made, if it made one); when ctx ends first
// it kills it and returns ctx.Err(). Calling it again, or after Close,
// waits for the same exit.
func (p *Process) Shutdown(ctx context.Context) error {
	p.once.Do(func() { _ = p.cmd.Process.Signal(softStop) })
	defer p.removeTmp()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.done
		return ctx.Err()
	}
}

// Close stops HAProxy at once (SIGTERM: connections are closed) and waits
// for it to exit (then removes the directory Start made, if it made
// one). It is idempotent.
func (p *Process) Close() error {
	p.once.Do(func() { _ = p.cmd.Process.Signal(hardStop) })
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.removeTmp()
	return nil
}
