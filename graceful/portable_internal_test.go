package graceful

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests cover what graceful does on every platform (listener
// bookkeeping, the drain, the refusal to upgrade where there is no
// handoff); they start no process, so they run on every GOOS.

// wait bounds each wait of these tests.
const wait = 10 * time.Second

func recvConn(t *testing.T, what string, ch <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(wait):
		t.Fatalf("waited %s for %s", wait, what)
		return nil
	}
}

// A paused listener keeps its socket and its queue: a connection made
// while paused is accepted only after resume, and pause returns once the
// accepting caller came back to Accept (or after its bound when it does
// not).
func TestListenerPauseResume(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newListener(inner, fileKey{kindListener, "tcp", inner.Addr().String()}, nil, nil)
	accepted := make(chan net.Conn)
	next := make(chan struct{}) // lets the accepting caller come back
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
			<-next
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	c1 := dial()
	defer c1.Close()
	s1 := recvConn(t, "the first connection", accepted)
	defer s1.Close()
	// The caller holds the connection and has not come back to Accept:
	// pause waits for it, up to its bound.
	paused := make(chan struct{})
	go func() { l.pause(); close(paused) }()
	select {
	case <-paused:
	case <-time.After(wait):
		t.Fatalf("pause did not return within %s with a caller that never came back", wait)
	}
	next <- struct{}{}

	c2 := dial() // queued by the kernel while paused
	defer c2.Close()
	select {
	case s := <-accepted:
		s.Close()
		t.Fatal("a paused listener accepted a connection")
	case <-time.After(50 * time.Millisecond):
	}
	l.resume()
	s2 := recvConn(t, "the connection queued while paused, after resume", accepted)
	s2.Close()
	next <- struct{}{}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

type closer struct {
	mu     sync.Mutex
	closed int
}

func (c *closer) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed++
	return nil
}

func (c *closer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// A drain tells tracked connections to finish, waits for their release,
// and closes (and counts as forced) only what is left at the deadline; a
// resumed drainer starts a fresh drain signal.
func TestDrainTrackedConnections(t *testing.T) {
	d := newDrainer()
	told := make(chan struct{}, 2)
	var kept, released closer
	release := d.track(&released, func() { told <- struct{}{} })
	defer d.track(&kept, func() { told <- struct{}{} })()

	drained := make(chan drainResult, 1)
	go func() { drained <- d.soft(time.Now().Add(500*time.Millisecond), nil) }()
	for range 2 {
		select {
		case <-told:
		case <-time.After(wait):
			t.Fatalf("waited %s for tracked connections to be told to finish", wait)
		}
	}
	release()
	var r drainResult
	select {
	case r = <-drained:
	case <-time.After(wait):
		t.Fatalf("the drain did not end within %s of its deadline", wait)
	}
	if r.forced != 1 || r.drained != 1 || kept.count() != 1 || released.count() != 0 {
		t.Errorf("drain: %+v, kept closed %d times, released closed %d times; want 1 drained, 1 forced (the one never released)",
			r, kept.count(), released.count())
	}

	ch := d.draining()
	select {
	case <-ch:
	default:
		t.Fatal("the drain signal is not closed during a drain")
	}
	d.resume()
	select {
	case <-d.draining():
		t.Fatal("the drain signal stays closed after resume")
	default:
	}
}

// Where the platform has no socket handoff, upgrades and the bake calls
// fail with ErrNotSupported naming it; elsewhere an upgrade is attempted
// (here to a binary that does not exist).
func TestUpgradeSupport(t *testing.T) {
	u, err := New(Options{Executable: filepath.Join(t.TempDir(), "missing"), Args: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ctx := context.Background()
	if _, err := u.Listen(ctx, "tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := u.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	err = u.Upgrade(ctx)
	if handoffSupported() != nil {
		for name, err := range map[string]error{"Upgrade": err, "Promote": u.Promote(ctx), "Rollback": u.Rollback(ctx)} {
			if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), runtime.GOOS) {
				t.Errorf("%s on %s: %v, want ErrNotSupported naming the platform", name, runtime.GOOS, err)
			}
		}
	} else if !errors.Is(err, ErrStart) {
		t.Errorf("Upgrade to a missing binary: %v, want ErrStart", err)
	}
	if st := u.State(); st != StateReady {
		t.Errorf("state %v after a refused upgrade, want ready", st)
	}
	if err := u.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
