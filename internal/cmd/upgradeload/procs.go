package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// srvEvent is a line of the servers' JSON logs.
type srvEvent struct {
	Msg     string        `json:"msg"`
	Time    time.Time     `json:"time"`
	PID     int           `json:"pid"`
	Child   int           `json:"child_pid"`
	Took    time.Duration `json:"took"`
	Forced  int           `json:"forced"`
	Drained int           `json:"drained"`
}

// srvLog is what every generation of the server wrote to its shared
// standard error.
type srvLog struct {
	mu      sync.Mutex
	events  []srvEvent
	last    []string
	races   int
	changed chan struct{}
	done    chan struct{}
}

func readServerLog(r io.Reader) *srvLog {
	l := &srvLog{changed: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			var ev srvEvent
			ok := json.Unmarshal([]byte(line), &ev) == nil && ev.Msg != ""
			l.mu.Lock()
			l.last = append(l.last, line)
			if len(l.last) > 20 {
				l.last = l.last[1:]
			}
			if strings.Contains(line, raceReport) {
				l.races++
			}
			if ok {
				l.events = append(l.events, ev)
			}
			l.mu.Unlock()
			select {
			case l.changed <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// mark returns how many events have been read so far, for await.
func (l *srvLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// await returns the first event from the mark from on that matches,
// waiting at most d for it.
func (l *srvLog) await(ctx context.Context, from int, what string, d time.Duration, match func(srvEvent) bool) (srvEvent, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		l.mu.Lock()
		for _, e := range l.events[from:] {
			if match(e) {
				l.mu.Unlock()
				return e, nil
			}
		}
		tail := strings.Join(l.last, "\n")
		l.mu.Unlock()
		select {
		case <-l.changed:
		case <-l.done:
			return srvEvent{}, fmt.Errorf("the servers exited while waiting for %s; last lines:\n%s", what, tail)
		case <-t.C:
			return srvEvent{}, fmt.Errorf("waited %s for %s; last lines:\n%s", d, what, tail)
		case <-ctx.Done():
			return srvEvent{}, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

func (l *srvLog) all() []srvEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]srvEvent(nil), l.events...)
}

// server is the first server process; its successors share its standard
// error.
type server struct {
	cmd  *exec.Cmd
	log  *srvLog
	once sync.Once
}

func startServer(bin string, args []string) (*server, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	w.Close()
	go func() { _ = cmd.Wait() }()
	return &server{cmd: cmd, log: readServerLog(r)}, nil
}

// stop drains whichever process serves now and waits (bounded) until every
// generation has exited, which closes the log.
func (s *server) stop(pidfile string) {
	s.once.Do(func() {
		if pid := readPID(pidfile); pid > 0 {
			_ = signal(pid, syscall.SIGTERM)
		}
		select {
		case <-s.log.done:
		case <-time.After(20 * time.Second):
			fmt.Fprintln(os.Stderr, "upgradeload: server processes still running 20s after SIGTERM")
		}
	})
}

// clientProc is a client process as the load program sees it.
type clientProc struct {
	n      int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex
	moves  map[string][]move // "unary" or "stream": every change of answering process
	rep    *clientReport
	change chan struct{}
	done   chan struct{}
}

type move struct {
	pid string
	at  time.Time
}

func startClient(self string, n int, mode, addr, caFile string) (*clientProc, error) {
	cmd := exec.Command(self, "-client", mode, "-addr", addr, "-ca", caFile)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &clientProc{n: n, cmd: cmd, stdin: stdin, moves: map[string][]move{}, change: make(chan struct{}, 1), done: make(chan struct{})}
	go p.read(stdout)
	return p, nil
}

func (p *clientProc) read(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var line struct {
			PID       string        `json:"pid"`
			StreamPID string        `json:"stream_pid"`
			At        int64         `json:"at"`
			Report    *clientReport `json:"report"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			continue
		}
		p.mu.Lock()
		switch {
		case line.Report != nil:
			p.rep = line.Report
		case line.PID != "":
			p.moves["unary"] = append(p.moves["unary"], move{line.PID, time.Unix(0, line.At)})
		case line.StreamPID != "":
			p.moves["stream"] = append(p.moves["stream"], move{line.StreamPID, time.Unix(0, line.At)})
		}
		p.mu.Unlock()
		select {
		case p.change <- struct{}{}:
		default:
		}
	}
	_ = p.cmd.Wait()
}

// await waits until the client's kind of answer ("unary" or "stream") comes
// from pid, having moved there at since or later (any time if since is
// zero), and returns when it moved.
func (p *clientProc) await(ctx context.Context, kind, pid string, since time.Time, d time.Duration) (time.Time, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		p.mu.Lock()
		ms := p.moves[kind]
		if n := len(ms); n > 0 && ms[n-1].pid == pid && !ms[n-1].at.Before(since) {
			p.mu.Unlock()
			return ms[n-1].at, nil
		}
		var seen []string
		for _, m := range ms {
			seen = append(seen, m.pid)
		}
		p.mu.Unlock()
		select {
		case <-p.change:
		case <-p.done:
			return time.Time{}, fmt.Errorf("client %d exited while waiting for its %s answers to come from %s", p.n, kind, pid)
		case <-t.C:
			return time.Time{}, fmt.Errorf("client %d: waited %s for its %s answers to come from %s; answered by %v", p.n, d, kind, pid, seen)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// wait waits (bounded) for the client's report after its stdin closed.
func (p *clientProc) wait(d time.Duration) (clientReport, error) {
	select {
	case <-p.done:
	case <-time.After(d):
		p.kill()
		return clientReport{}, fmt.Errorf("client %d did not stop within %s", p.n, d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rep == nil {
		return clientReport{}, fmt.Errorf("client %d exited without a report", p.n)
	}
	return *p.rep, nil
}

func (p *clientProc) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
