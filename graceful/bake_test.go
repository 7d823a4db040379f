//go:build linux

package graceful_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

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
			s.waitPIDFile(s.first)
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
