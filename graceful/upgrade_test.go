package graceful_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
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
			s := startServer(t, nil, "-bake", "1s")
			l := startLoad(t, s, 16, false, "/")
			s.install(fault)
			if ok, msg := s.upgrade(); !ok {
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
			l.check(t)
			// After the window the old process finishes and exits.
			waitGone(t, s.first)
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
