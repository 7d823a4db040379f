//go:build linux

package graceful_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testchild"
)

// server is a testserver process tree whose upgrade path the test controls.
type server struct {
	t       *testing.T
	dir     string
	path    string // the upgrade path: a copy of goodBin, or a fault wrapper
	pidfile string
	addr    string
	stderr  string
	first   int
	client  *http.Client
}

func startServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{t: t, dir: dir, path: filepath.Join(dir, "server"), pidfile: filepath.Join(dir, "pid"),
		stderr: filepath.Join(dir, "stderr"), client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: processWait}}
	s.install("")
	errf, err := os.Create(s.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	addrFile := filepath.Join(dir, "addr")
	cmd := exec.Command(s.path, append([]string{"-addrfile", addrFile, "-pidfile", s.pidfile}, args...)...)
	cmd.Stdout, cmd.Stderr = errf, errf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.first = cmd.Process.Pid
	// The first process is our child; reap it whenever it exits.
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		s.stopAll()
		recv(t, "the first server process to be reaped", waited)
		checkNoRace(t, s.stderr)
		if t.Failed() {
			b, _ := os.ReadFile(s.stderr)
			t.Logf("server stderr:\n%s", tail(string(b), 60))
		}
	})
	s.addr = waitFile(t, addrFile)
	s.waitReady()
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// processWait bounds every wait on a server process's state; poll paces
// the polls (none of these waits has a signal of its own).
const (
	processWait = 20 * time.Second
	poll        = 5 * time.Millisecond
)

// waitFile waits for a file another process writes.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	var got string
	testchild.Eventually(t, path+" to be written", processWait, poll, func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if len(b) == 0 && !strings.HasSuffix(path, ".waiting") {
			return errors.New("empty")
		}
		got = strings.TrimSpace(string(b))
		return nil
	})
	return got
}

// install puts the good binary, or a wrapper selecting a fault, at the
// upgrade path; rename keeps running processes unaffected.
func (s *server) install(fault string) {
	s.t.Helper()
	tmp := s.path + ".new"
	var data []byte
	var err error
	if fault == "" {
		data, err = os.ReadFile(goodBin)
	} else {
		data = []byte(fmt.Sprintf("#!/bin/sh\nBATON_TEST_FAULT=%s exec %s \"$@\"\n", fault, goodBin))
	}
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		s.t.Fatal(err)
	}
}

func (s *server) url(p string) string { return "http://" + s.addr + p }

// pid asks the server which process answers.
func (s *server) pid() int {
	s.t.Helper()
	n, err := s.answer()
	if err != nil {
		s.t.Fatalf("asking which process answers: %v", err)
	}
	return n
}

// answer asks the server which process answers.
func (s *server) answer() (int, error) {
	resp, err := s.client.Get(s.url("/"))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(string(b)), "pid="))
	if err != nil {
		return 0, fmt.Errorf("bad answer %q", b)
	}
	return n, nil
}

func (s *server) pidFile() int {
	b, _ := os.ReadFile(s.pidfile)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// waitReady waits until the readiness probe answers 200.
func (s *server) waitReady() {
	s.t.Helper()
	testchild.Eventually(s.t, "the server's readiness probe to answer 200", processWait, poll, func() error {
		resp, err := s.client.Get(s.url("/healthz/readyz"))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return errors.New(resp.Status)
		}
		return nil
	})
}

// upgrade asks the serving process to upgrade and returns Upgrade's answer.
func (s *server) upgrade() (ok bool, msg string) {
	s.t.Helper()
	resp, err := s.client.Post(s.url("/upgrade"), "text/plain", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200, strings.TrimSpace(string(b))
}

// waitPID waits until pid answers requests.
func (s *server) waitPID(pid int) {
	s.t.Helper()
	testchild.Eventually(s.t, fmt.Sprintf("process %d to answer", pid), processWait, poll, func() error {
		got, err := s.answer()
		if err == nil && got != pid {
			err = fmt.Errorf("answered by %d", got)
		}
		return err
	})
}

// stopAll terminates every process of the tree still alive.
func (s *server) stopAll() {
	for _, pid := range s.tree() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	testchild.Eventually(s.t, "the killed server processes to exit", processWait, poll, func() error {
		if pids := s.tree(); len(pids) > 0 {
			return fmt.Errorf("still alive: %v", pids)
		}
		return nil
	})
}

// tree lists live processes started from this server's directory.
func (s *server) tree() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil || alive(string(stat)) == false {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(env), s.dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func alive(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X'
}

func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && alive(string(stat))
}

// load is a set of clients requesting / until stopped.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	ok     int
	fails  map[string]int
	pids   map[string]int
	sample []string
}

func startLoad(t *testing.T, s *server, clients int, keepAlive bool, path string) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, fails: map[string]int{}, pids: map[string]int{}}
	tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: clients}
	c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				// Go's transport resends an idempotent request by itself
				// when a reused keep-alive connection closes before the
				// answer; a second connection for one request shows it.
				var conns atomic.Int32
				trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { conns.Add(1) }}
				req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.WithoutCancel(ctx), trace), "GET", s.url(path), nil)
				resp, err := c.Do(req)
				if conns.Load() > 1 {
					l.fail("retried", "request resent after its keep-alive connection closed under it")
				}
				if err != nil {
					l.fail(classify(err), err.Error())
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					l.fail(classify(err), err.Error())
				case resp.StatusCode != 200:
					l.fail("non-2xx", resp.Status)
				default:
					l.mu.Lock()
					l.ok++
					l.pids[strings.TrimSpace(string(b))]++
					l.mu.Unlock()
				}
			}
		}()
	}
	t.Cleanup(func() { l.stop(); tr.CloseIdleConnections() })
	return l
}

// waitSeen waits (bounded) until the load was answered by pid: keep-alive
// clients move to a new process only as their connections to the old one
// end.
func (l *load) waitSeen(t *testing.T, pid int) {
	t.Helper()
	key := fmt.Sprintf("pid=%d", pid)
	testchild.Eventually(t, fmt.Sprintf("the load to reach process %d", pid), processWait, poll, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.pids[key] == 0 {
			return fmt.Errorf("answered by %v", l.pids)
		}
		return nil
	})
}

func (l *load) fail(class, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails[class]++
	if len(l.sample) < 5 {
		l.sample = append(l.sample, msg)
	}
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// check stops the load and fails the test on any failed request.
func (l *load) check(t *testing.T) {
	t.Helper()
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("load: %d ok, failures %v, answered by %d processes", l.ok, l.fails, len(l.pids))
	if len(l.fails) > 0 {
		t.Errorf("failed requests: %v; e.g. %q", l.fails, l.sample)
	}
	if l.ok == 0 {
		t.Error("no request succeeded")
	}
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}

// readLine reads one line from a raw connection with a bound.
func readLine(t *testing.T, c net.Conn, r *bufio.Reader) (string, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	return r.ReadString('\n')
}

// installGated puts a build at the upgrade path whose readiness check
// passes only once gate exists.
func (s *server) installGated(gate string) {
	s.t.Helper()
	tmp := s.path + ".new"
	data := fmt.Sprintf("#!/bin/sh\nBATON_TEST_FAULT=gate BATON_TEST_GATE=%s exec %s \"$@\"\n", gate, goodBin)
	if err := os.WriteFile(tmp, []byte(data), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		s.t.Fatal(err)
	}
}

func (s *server) upgradeNoFatal() (bool, string) {
	resp, err := s.client.Post(s.url("/upgrade"), "text/plain", nil)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200, strings.TrimSpace(string(b))
}

// waitState waits until the accepting process reports state on its
// readiness probe.
func (s *server) waitState(state string) {
	s.t.Helper()
	testchild.Eventually(s.t, "the serving process to report "+state, processWait, poll, func() error {
		resp, err := s.client.Get(s.url("/healthz/readyz"))
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(string(b)); got != state {
			return fmt.Errorf("state %s", got)
		}
		return nil
	})
}

// waitNoFallback waits until pid logged that its predecessor is no longer a
// fallback (the predecessor's exit closes the control socket).
func (s *server) waitNoFallback(pid int) {
	s.t.Helper()
	want := fmt.Sprintf(`"msg":"previous process no longer a fallback","pid":%d`, pid)
	testchild.Eventually(s.t, fmt.Sprintf("process %d to log that its predecessor is no longer a fallback", pid), processWait, poll, func() error {
		if b, _ := os.ReadFile(s.stderr); !strings.Contains(string(b), want) {
			return errors.New("not logged")
		}
		return nil
	})
}

// waitInFlight waits until n requests are inside the / handler of pid.
func (s *server) waitInFlight(n, pid int) {
	s.t.Helper()
	want := fmt.Sprintf("%d pid=%d", n, pid)
	testchild.Eventually(s.t, fmt.Sprintf("%d requests in flight in process %d", n, pid), processWait, poll, func() error {
		resp, err := s.client.Get(s.url("/inflight"))
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(string(b)); got != want {
			return fmt.Errorf("in flight: %q", got)
		}
		return nil
	})
}

// writeFault writes a wrapper at path that runs the good binary with a
// fault (and a gate file for the faults that wait for one).
func writeFault(t *testing.T, path, fault, gate string) {
	t.Helper()
	data := fmt.Sprintf("#!/bin/sh\nBATON_TEST_FAULT=%s BATON_TEST_GATE=%s exec %s \"$@\"\n", fault, gate, goodBin)
	if err := os.WriteFile(path+".new", []byte(data), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// installFault puts a wrapper selecting fault, with its gate file, at the
// upgrade path.
func (s *server) installFault(fault, gate string) {
	s.t.Helper()
	writeFault(s.t, s.path, fault, gate)
}

// upgradeWith asks the serving process for UpgradeWith with the given
// query (binary=...&bake=...).
func (s *server) upgradeWith(query string) (ok bool, msg string) {
	s.t.Helper()
	resp, err := s.client.Post(s.url("/upgrade?"+query), "text/plain", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200, strings.TrimSpace(string(b))
}

// exe asks the serving process which binary it was started from.
func (s *server) exe() string {
	s.t.Helper()
	resp, err := s.client.Get(s.url("/exe"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	exe, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	return exe
}

// waitNewPID waits until the PID file names a process other than old.
func waitNewPID(t *testing.T, s *server, old int) int {
	t.Helper()
	var pid int
	testchild.Eventually(t, fmt.Sprintf("the PID file to name a process other than %d", old), processWait, poll, func() error {
		if pid = s.pidFile(); pid == 0 || pid == old {
			return fmt.Errorf("names %d", pid)
		}
		return nil
	})
	return pid
}

// waitPIDFile waits until the PID file names pid.
func (s *server) waitPIDFile(pid int) {
	s.t.Helper()
	testchild.Eventually(s.t, fmt.Sprintf("the PID file to name %d", pid), processWait, poll, func() error {
		if got := s.pidFile(); got != pid {
			return fmt.Errorf("names %d", got)
		}
		return nil
	})
}

// waitGone waits until pid has exited.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	testchild.Eventually(t, fmt.Sprintf("process %d to exit", pid), processWait, poll, func() error {
		if processAlive(pid) {
			return errors.New("still running")
		}
		return nil
	})
}

// raceReport is what a race-enabled binary prints on standard error when
// it finds a data race.
const raceReport = "WARNING: DATA RACE"

// checkNoRace fails t if the processes writing to the stderr file at path
// reported a data race.
func checkNoRace(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if i := strings.Index(string(b), raceReport); i >= 0 {
		t.Errorf("a server process reported a data race:\n%s", tail(string(b[i:]), 80))
	}
}
