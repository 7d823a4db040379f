//go:build linux

package graceful_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testchild"
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
			// A new process that failed was killed and reaped: the
			// process tree is the old process alone.
			testchild.Eventually(t, "the process tree to be the old process alone", processWait, poll, func() error {
				if tree := s.tree(); len(tree) != 1 || tree[0] != s.first {
					return fmt.Errorf("processes %v, old process %d", tree, s.first)
				}
				return nil
			})
			s.install("")
			if ok, msg := s.upgrade(); !ok {
				t.Fatalf("good upgrade after fault: %s", msg)
			}
			s.waitPID(s.pidFile())
			l.check(t)
		})
	}
}

// While a new process's Check is held open, every answer for 500 ms still
// comes from the old process: the new one already holds the sockets (and
// its server calls Accept) but must not accept before its Check passed.
func TestNoAcceptBeforeCheck(t *testing.T) {
	s := startServer(t, nil, "-upgrade-timeout", "20s")
	gate := filepath.Join(s.dir, "gate")
	s.installGated(gate)
	type answer struct {
		ok  bool
		msg string
	}
	upgraded := make(chan answer, 1)
	go func() {
		ok, msg := s.upgradeNoFatal()
		upgraded <- answer{ok, msg}
	}()
	waitFile(t, gate+".waiting") // inside its Check, holding the sockets
	n := 0
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); n++ {
		// A new connection each time: the kernel hands it to any
		// process blocked in accept.
		if p := s.pid(); p != s.first {
			t.Fatalf("request %d answered by %d while its Check was held open; want the old process %d", n, p, s.first)
		}
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-upgraded:
		if !a.ok {
			t.Fatalf("upgrade once the Check passed: %s", a.msg)
		}
	case <-time.After(processWait):
		t.Fatalf("the upgrade did not return within %s of its Check passing", processWait)
	}
	s.waitPID(waitNewPID(t, s, s.first))
	t.Logf("%d requests answered by the old process while the Check was held open", n)
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
		s.waitPIDFile(s.first)
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

// A process on tableflip v1.2.3 upgrades into a graceful one: the wire
// protocol is the same.
func TestFromTableflip(t *testing.T) {
	dir := t.TempDir()
	tf, err := testchild.Build(dir, "./internal/tfserver", raceEnabled)
	if err != nil {
		t.Fatal(err)
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
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: testWait}}
	t.Cleanup(func() { s.stopAll(); recv(t, "the tableflip process to be reaped", waited) })
	if got := s.pid(); got != cmd.Process.Pid {
		t.Fatalf("tableflip process answered as %d", got)
	}
	s.install("") // the graceful build now stands at the path
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	next := waitNewPID(t, s, cmd.Process.Pid)
	s.waitPID(next)
	recv(t, "the tableflip parent to exit once the graceful child is ready", waited)
	if ok, msg := s.upgrade(); !ok {
		t.Fatalf("graceful process upgrading again: %s", msg)
	}
	s.waitPID(waitNewPID(t, s, next))
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
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: testWait}
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
