package graceful_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Upgrades under load from 16 clients, with and without keep-alive, lose
// no request, and clients move to the new processes.
func TestUpgradesUnderLoad(t *testing.T) {
	for _, keepAlive := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepalive=%v", keepAlive), func(t *testing.T) {
			s := startServer(t, nil)
			l := startLoad(t, s, 16, keepAlive, "/")
			last := s.first
			for i := range 5 {
				if ok, msg := s.upgrade(); !ok {
					t.Fatalf("upgrade %d: %s", i, msg)
				}
				pid := s.pidFile()
				if pid == last {
					t.Fatalf("upgrade %d: PID file still names %d", i, pid)
				}
				s.waitPID(pid)
				last = pid
			}
			l.waitSeen(t, last)
			l.check(t)
			if len(l.pids) < 2 {
				t.Errorf("clients saw only %v", l.pids)
			}
			if _, seen := l.pids[fmt.Sprintf("pid=%d", last)]; !seen {
				t.Errorf("clients never reached the last process %d: %v", last, l.pids)
			}
		})
	}
}

// SIGHUP is the default trigger; the old process exits after the handoff.
func TestSIGHUPUpgrades(t *testing.T) {
	s := startServer(t, nil)
	if err := syscall.Kill(s.first, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.waitPID(waitNewPID(t, s, s.first))
	waitGone(t, s.first)
}

func waitNewPID(t *testing.T, s *server, old int) int {
	t.Helper()
	for range 4000 {
		if p := s.pidFile(); p != 0 && p != old {
			return p
		}
		waitBriefly()
	}
	t.Fatal("PID file never changed")
	return 0
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for range 4000 {
		if !processAlive(pid) {
			return
		}
		waitBriefly()
	}
	t.Fatalf("process %d never exited", pid)
}

// Faults under load: each fails the upgrade with an error naming the cause,
// no request fails, and a good upgrade works afterwards.
func TestFaults(t *testing.T) {
	cases := []struct {
		fault string
		want  []string
	}{
		{"exit", []string{"exited before ready", "exit status 3", "line 3: bad value"}},
		{"hang", []string{"not ready before timeout", "killed", "warming cache"}},
		{"noexec", []string{"cannot start new process", "permission denied"}},
	}
	for _, c := range cases {
		t.Run(c.fault, func(t *testing.T) {
			s := startServer(t, nil, "-upgrade-timeout", "1s")
			l := startLoad(t, s, 16, false, "/")
			if c.fault == "noexec" {
				if err := os.Chmod(s.path, 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				s.install(c.fault)
			}
			ok, msg := s.upgrade()
			if ok {
				t.Fatalf("faulty upgrade succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if got := s.pid(); got != s.first {
				t.Errorf("answered by %d, want the old process %d", got, s.first)
			}
			s.install("")
			if ok, msg := s.upgrade(); !ok {
				t.Fatalf("good upgrade after fault: %s", msg)
			}
			s.waitPID(s.pidFile())
			l.check(t)
		})
	}
}

// Inside the bake window the old process resumes when the new one crashes
// right after ready, or gives serving back after failing its readiness
// check; a good upgrade works afterwards.
func TestBakeRollback(t *testing.T) {
	for _, fault := range []string{"crash", "unhealthy"} {
		t.Run(fault, func(t *testing.T) {
			s := startServer(t, nil, "-bake", "3s")
			l := startLoad(t, s, 16, false, "/")
			s.install(fault)
			ok, msg := s.upgrade()
			// A crash right after ready may also be seen before the
			// handoff completes: then the upgrade fails instead.
			if !ok && (fault != "crash" || !strings.Contains(msg, "exit status 4")) {
				t.Fatalf("handoff: %s", msg)
			}
			// The old process takes serving back by itself.
			s.waitPID(s.first)
			for range 4000 {
				if s.pidFile() == s.first {
					break
				}
				waitBriefly()
			}
			if p := s.pidFile(); p != s.first {
				t.Errorf("PID file names %d after rollback, want %d", p, s.first)
			}
			s.install("")
			if ok, msg := s.upgrade(); !ok {
				t.Fatalf("good upgrade after rollback: %s", msg)
			}
			next := waitNewPID(t, s, s.first)
			s.waitPID(next)
			// While the old process bakes, the new one refuses to upgrade.
			if ok, msg := s.upgrade(); ok || !strings.Contains(msg, "bake window") {
				t.Errorf("upgrade during the bake window: ok=%v %q", ok, msg)
			}
			// After the window the old process finishes and exits, and
			// the new one may upgrade.
			waitGone(t, s.first)
			s.waitNoFallback(next)
			if ok, msg := s.upgrade(); !ok {
				t.Fatalf("upgrade after the bake window: %s", msg)
			}
			s.waitPID(waitNewPID(t, s, next))
			l.check(t)
		})
	}
}

// A trigger during an upgrade is refused with ErrUpgradeInProgress.
func TestConcurrentTriggers(t *testing.T) {
	s := startServer(t, nil, "-upgrade-timeout", "20s")
	gate := s.dir + "/gate"
	s.installGated(gate)
	l := startLoad(t, s, 16, false, "/")
	var wg sync.WaitGroup
	var first struct {
		ok  bool
		msg string
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		first.ok, first.msg = s.upgradeNoFatal()
	}()
	s.waitState("upgrading")
	ok, msg := s.upgrade()
	if ok || !strings.Contains(msg, "already in progress") {
		t.Errorf("second trigger: ok=%v %q, want refusal naming the upgrade in progress", ok, msg)
	}
	if err := syscall.Kill(s.first, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !first.ok {
		t.Fatalf("first trigger: %s", first.msg)
	}
	s.install("")
	s.waitPID(waitNewPID(t, s, s.first))
	if ok, msg := s.upgrade(); !ok {
		t.Fatalf("upgrade afterwards: %s", msg)
	}
	l.check(t)
}

// The old process is SIGKILLed while the new one is starting: the new one
// becomes ready, serves alone, and upgrades later. Requests the killed
// process had accepted would be lost with it, so the load is paused
// around the kill; everything sent while the new process starts is queued
// by the kernel and answered.
func TestOldKilledMidHandoff(t *testing.T) {
	s := startServer(t, nil, "-upgrade-timeout", "20s")
	gate := s.dir + "/gate"
	s.installGated(gate)
	if err := syscall.Kill(s.first, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Killed once the new process holds the sockets and waits in its
	// readiness check (killed earlier, there would be no one to serve).
	waitFile(t, gate+".waiting")
	if err := syscall.Kill(s.first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, s.first)
	l := startLoad(t, s, 16, false, "/")
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	next := waitNewPID(t, s, s.first)
	s.waitPID(next)
	s.install("")
	if ok, msg := s.upgrade(); !ok {
		t.Fatalf("upgrade afterwards: %s", msg)
	}
	s.waitPID(waitNewPID(t, s, next))
	l.check(t)
}

// Requests in flight across an upgrade (2 s each, known to be inside the
// old process's handler before the trigger) complete on the old process; a
// hijacked connection is told to finish and closed at the drain deadline.
func TestInFlightAndHijackedAcrossUpgrade(t *testing.T) {
	s := startServer(t, nil, "-drain-timeout", "4s")
	hj, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Close()
	r := bufio.NewReader(hj)
	fmt.Fprintf(hj, "GET /hijack HTTP/1.1\r\nHost: test\r\n\r\n")
	if line, err := readLine(t, hj, r); err != nil || !strings.HasPrefix(line, "hello") {
		t.Fatalf("hijack: %q %v", line, err)
	}
	type result struct {
		body string
		err  error
	}
	results := make(chan result, 4)
	for range 4 {
		go func() {
			resp, err := s.client.Get(s.url("/?delay=2s"))
			if err != nil {
				results <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{string(b), err}
		}()
	}
	// Only the first process exists yet, so it answers /inflight; the
	// long requests are inside its handler before the upgrade starts.
	s.waitInFlight(4, s.first)
	if ok, msg := s.upgrade(); !ok {
		t.Fatal(msg)
	}
	if line, err := readLine(t, hj, r); err != nil || !strings.HasPrefix(line, fmt.Sprintf("bye pid=%d", s.first)) {
		t.Fatalf("hijacked connection was not told to finish: %q %v", line, err)
	}
	// The old process still drains (the hijacked connection holds it
	// until the deadline); the new one may upgrade meanwhile (tableflip
	// issue 52).
	if ok, msg := s.upgrade(); !ok {
		t.Fatalf("upgrade while the old process drains: %s", msg)
	}
	if !processAlive(s.first) {
		t.Error("the old process was gone before its drain deadline; the check above proved nothing")
	}
	for range 4 {
		res := <-results
		if want := fmt.Sprintf("pid=%d", s.first); res.err != nil || strings.TrimSpace(res.body) != want {
			t.Errorf("long request: %q %v, want %s (the old process, where it was in flight)", res.body, res.err, want)
		}
	}
	// We never hang up; the old process's drain deadline closes it.
	if line, err := readLine(t, hj, r); !errors.Is(err, io.EOF) {
		t.Errorf("hijacked connection after the deadline: %q %v, want EOF", line, err)
	}
	waitGone(t, s.first)
}

// systemd sees READY=1, RELOADING=1, MAINPID= of the new process with
// READY=1, and STOPPING=1.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	pc, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	msgs := make(chan string, 32)
	go func() {
		defer close(msgs)
		buf := make([]byte, 4096)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func() string {
		select {
		case m := <-msgs:
			return m
		case <-time.After(20 * time.Second):
			t.Fatal("no notification")
		}
		return ""
	}
	s := startServer(t, []string{"NOTIFY_SOCKET=" + sock})
	if m := next(); m != "READY=1" {
		t.Fatalf("first notification %q", m)
	}
	if ok, msg := s.upgrade(); !ok {
		t.Fatal(msg)
	}
	if m := next(); !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("on upgrade: %q", m)
	}
	child := s.pidFile()
	if m := next(); m != fmt.Sprintf("MAINPID=%d\nREADY=1", child) {
		t.Errorf("after handoff: %q, want MAINPID of %d", m, child)
	}
	if err := syscall.Kill(child, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if m := next(); m != "STOPPING=1" {
		t.Errorf("on stop: %q", m)
	}
	waitGone(t, child)
	pc.Close()
	for range msgs {
	}
}

// On a first start, a socket passed by systemd (LISTEN_FDS) is used.
func TestSocketActivation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	dir := t.TempDir()
	errf, _ := os.Create(filepath.Join(dir, "stderr"))
	defer errf.Close()
	t.Cleanup(func() { checkNoRace(t, filepath.Join(dir, "stderr")) })
	// LISTEN_PID must name the process itself, known only after fork: the
	// shell sets it before exec.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -addr "$1" -addrfile "$2"`,
		goodBin, addr, filepath.Join(dir, "addr"))
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout, cmd.Stderr = errf, errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	waitFile(t, filepath.Join(dir, "addr"))
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("activated socket not served: %v", err)
	}
	resp.Body.Close()
	// The inherited socket was used, not a new one: the address was
	// bound only by the socket we passed (no SO_REUSEPORT), so a second
	// bind must fail while it is open.
	if l2, err := net.Listen("tcp", addr); err == nil {
		l2.Close()
		t.Error("address free again: the activated socket was not used")
	}
}

// Unix stream and UDP sockets are inherited too; the Unix socket's path
// outlives the old process.
func TestUnixAndUDPInherited(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpAddr := pc.LocalAddr().String()
	pc.Close()
	s := startServer(t, nil, "-unix", sock, "-udp", udpAddr)
	unixClient := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	askUnix := func() string {
		resp, err := unixClient.Get("http://unix/")
		if err != nil {
			t.Fatalf("unix: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	askUDP := func() string {
		c, err := net.Dial("udp", udpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 64)
		for range 100 {
			c.Write([]byte("?"))
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, err := c.Read(buf); err == nil {
				return string(buf[:n])
			}
		}
		t.Fatal("udp: no answer")
		return ""
	}
	want := fmt.Sprintf("pid=%d", s.first)
	if got := askUnix(); got != want {
		t.Fatalf("unix before: %q", got)
	}
	if got := askUDP(); got != want {
		t.Fatalf("udp before: %q", got)
	}
	if ok, msg := s.upgrade(); !ok {
		t.Fatal(msg)
	}
	waitGone(t, s.first)
	want = fmt.Sprintf("pid=%d", s.pidFile())
	if got := askUnix(); got != want {
		t.Errorf("unix after: %q, want %q", got, want)
	}
	if got := askUDP(); got != want {
		t.Errorf("udp after: %q, want %q", got, want)
	}
}

// A process on tableflip v1.2.3 upgrades into a graceful one: the wire
// protocol is the same.
func TestFromTableflip(t *testing.T) {
	dir := t.TempDir()
	tf := filepath.Join(dir, "tfserver")
	build := goBuild(tf, "./internal/tfserver")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building tfserver: %v\n%s", err, out)
	}
	path := filepath.Join(dir, "server")
	if err := os.Rename(tf, path); err != nil {
		t.Fatal(err)
	}
	addrFile, pidfile := filepath.Join(dir, "addr"), filepath.Join(dir, "pid")
	errf, _ := os.Create(filepath.Join(dir, "stderr"))
	defer errf.Close()
	t.Cleanup(func() { checkNoRace(t, filepath.Join(dir, "stderr")) })
	cmd := exec.Command(path, "-addr", "127.0.0.1:0", "-addrfile", addrFile, "-pidfile", pidfile)
	cmd.Stdout, cmd.Stderr = errf, errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	s := &server{t: t, dir: dir, path: path, pidfile: pidfile, addr: waitFile(t, addrFile),
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	t.Cleanup(func() { s.stopAll(); <-waited })
	if got := s.pid(); got != cmd.Process.Pid {
		t.Fatalf("tableflip process answered as %d", got)
	}
	s.install("") // the graceful build now stands at the path
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	next := waitNewPID(t, s, cmd.Process.Pid)
	s.waitPID(next)
	<-waited // the tableflip parent exits once the graceful child is ready
	if ok, msg := s.upgrade(); !ok {
		t.Fatalf("graceful process upgrading again: %s", msg)
	}
	s.waitPID(waitNewPID(t, s, next))
}

// SIGTERM: readiness turns not-ready while requests are still answered
// (the drain delay), the hijacked connection is told to finish; a second
// SIGTERM closes at once instead of waiting for the drain deadline; the
// Unix socket's path is removed as nobody serves it any more.
func TestStopSignals(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	s := startServer(t, nil, "-drain-delay", "60s", "-drain-timeout", "60s", "-unix", sock)
	hj, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Close()
	r := bufio.NewReader(hj)
	fmt.Fprintf(hj, "GET /hijack HTTP/1.1\r\nHost: test\r\n\r\n")
	if line, err := readLine(t, hj, r); err != nil || !strings.HasPrefix(line, "hello") {
		t.Fatalf("hijack: %q %v", line, err)
	}
	if err := syscall.Kill(s.first, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Inside the delay: not ready, but still serving.
	s.waitState("draining")
	if got := s.pid(); got != s.first {
		t.Fatalf("answered by %d", got)
	}
	if err := syscall.Kill(s.first, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Closed at once: well before the 60 s delay and deadline (it may
	// still have been told to finish on the way).
	line, err := readLine(t, hj, r)
	if err == nil && strings.HasPrefix(line, "bye") {
		line, err = readLine(t, hj, r)
	}
	if !errors.Is(err, io.EOF) {
		t.Errorf("hijacked connection after the second SIGTERM: %q %v, want EOF", line, err)
	}
	waitGone(t, s.first)
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unix socket path after the last process stopped: %v", err)
	}
}

// The new process ends its predecessor's bake window on purpose: Rollback
// makes the old process resume, Promote makes it drain and exit at once.
func TestRollbackAndPromote(t *testing.T) {
	s := startServer(t, nil, "-bake", "5m")
	l := startLoad(t, s, 8, false, "/")
	post := func(path string) (int, string) {
		t.Helper()
		resp, err := s.client.Post(s.url(path), "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if ok, msg := s.upgrade(); !ok {
		t.Fatalf("handoff: %s", msg)
	}
	first := waitNewPID(t, s, s.first)
	s.waitPID(first)
	if code, msg := post("/rollback"); code != 200 {
		t.Fatalf("rollback: %d %s", code, msg)
	}
	s.waitPID(s.first)
	waitGone(t, first)

	if ok, msg := s.upgrade(); !ok {
		t.Fatalf("second handoff: %s", msg)
	}
	second := waitNewPID(t, s, s.first)
	s.waitPID(second)
	if code, msg := post("/promote"); code != 200 {
		t.Fatalf("promote: %d %s", code, msg)
	}
	// Long before the 5-minute window: the old process let go and exits.
	waitGone(t, s.first)
	if code, msg := post("/promote"); code != 200 {
		t.Errorf("second promote: %d %s, want 200 (nothing to end)", code, msg)
	}
	if code, msg := post("/rollback"); code != http.StatusConflict || !strings.Contains(msg, "no previous process") {
		t.Errorf("rollback without a fallback: %d %q", code, msg)
	}
	if p := s.pid(); p != second {
		t.Errorf("pid %d answers after a refused rollback, want %d", p, second)
	}
	l.check(t)
}

// Under -race the server processes are race builds and their reports are
// caught: a deliberate race in a server must show up where checkNoRace
// looks.
func TestRaceDetectorReachesServers(t *testing.T) {
	if !raceEnabled {
		t.Skip("the test binary is not a race build, so neither are the servers")
	}
	dir := t.TempDir()
	stderr, addrFile := filepath.Join(dir, "stderr"), filepath.Join(dir, "addr")
	errf, err := os.Create(stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd := exec.Command(goodBin, "-addrfile", addrFile)
	cmd.Env = append(os.Environ(), "BATON_TEST_RACE=1")
	cmd.Stdout, cmd.Stderr = errf, errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + waitFile(t, addrFile) + "/race")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The report is written before the handler answers.
	b, _ := os.ReadFile(stderr)
	if !strings.Contains(string(b), raceReport) {
		t.Fatalf("no race report from a race-built server; stderr:\n%s", tail(string(b), 20))
	}
}

// A new process that leaves inside its predecessor's bake window for any
// reason gives serving back: here it returns an error from main after
// Ready, and its deferred Close runs ("close"), or it is sent SIGTERM
// ("sigterm"). The old process resumes and no request fails, although the
// new process served keep-alive clients before it left.
func TestLeaveInBakeGivesServingBack(t *testing.T) {
	for _, how := range []string{"close", "sigterm"} {
		t.Run(how, func(t *testing.T) {
			s := startServer(t, nil, "-bake", "5m")
			l := startLoad(t, s, 16, true, "/")
			gate := filepath.Join(s.dir, "leave")
			s.installFault("leave", gate)
			if ok, msg := s.upgrade(); !ok {
				t.Fatalf("handoff: %s", msg)
			}
			next := waitNewPID(t, s, s.first)
			// The new process serves before it leaves, so its own
			// keep-alive connections must drain without a failure.
			l.waitSeen(t, next)
			if how == "close" {
				if err := os.WriteFile(gate, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			} else if err := syscall.Kill(next, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			waitGone(t, next)
			s.waitPID(s.first)
			if p := s.pidFile(); p != s.first {
				t.Errorf("PID file names %d after the new process left, want the resumed %d", p, s.first)
			}
			l.waitSeen(t, s.first)
			// The resumed process upgrades again.
			s.install("")
			if ok, msg := s.upgrade(); !ok {
				t.Fatalf("upgrade after the new process left: %s", msg)
			}
			s.waitPID(waitNewPID(t, s, s.first))
			l.check(t)
		})
	}
}

// UpgradeWith names the binary and the bake window of one upgrade: a
// release at a path of its own that fails inside its bake is rolled back,
// and the resumed process's next plain upgrade starts its own binary
// (Options.Executable) again, without a bake window (Options has none).
// A negative bake window means none even when Options has one.
func TestUpgradeWithBinaryAndBake(t *testing.T) {
	t.Run("binary", func(t *testing.T) {
		s := startServer(t, nil)
		l := startLoad(t, s, 8, false, "/")
		bad := filepath.Join(s.dir, "release-v3")
		writeFault(t, bad, "unhealthy", "")
		if ok, msg := s.upgradeWith("binary=" + bad + "&bake=5m"); !ok {
			t.Fatalf("handoff to %s: %s", bad, msg)
		}
		// The unhealthy release gives serving back inside its bake.
		s.waitPID(s.first)
		for range 4000 {
			if s.pidFile() == s.first {
				break
			}
			waitBriefly()
		}
		if ok, msg := s.upgrade(); !ok {
			t.Fatalf("plain upgrade after the rollback: %s", msg)
		}
		next := waitNewPID(t, s, s.first)
		s.waitPID(next)
		if exe := s.exe(); exe != s.path {
			t.Errorf("the plain upgrade started %s, want the process's own binary %s", exe, s.path)
		}
		// Options has no bake window: the old process drains and exits.
		waitGone(t, s.first)
		l.check(t)
	})
	t.Run("no-bake", func(t *testing.T) {
		s := startServer(t, nil, "-bake", "5m")
		if ok, msg := s.upgradeWith("bake=-1s"); !ok {
			t.Fatalf("handoff: %s", msg)
		}
		next := waitNewPID(t, s, s.first)
		waitGone(t, s.first)
		// Nothing bakes, so the new process may upgrade at once.
		if ok, msg := s.upgrade(); !ok {
			t.Fatalf("upgrade of %d after an upgrade without a bake: %s", next, msg)
		}
		s.waitPID(waitNewPID(t, s, next))
	})
}
