package fleettest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout/fleet"
)

// DefaultTTL is the lease TTL of the suite when Backend.TTL is zero.
const DefaultTTL = 2 * time.Second

// Backend tells TestEngine how to reach one engine server. Addr and Open
// are required; the zero value is not usable.
type Backend struct {
	// Addr is the server's host:port. The suite puts a Link in front of
	// it to cut one client off.
	Addr string
	// Open returns a new Engine that reaches the server at addr (Addr or
	// a Link's address). Every Engine opened for one suite must share the
	// same data. Open closes it when t ends.
	Open func(t *testing.T, addr string) fleet.Engine
	// TTL is the lease TTL the suite grants (zero: DefaultTTL). Expiry
	// deadlines are three TTLs.
	TTL time.Duration
}

// TestEngine runs the conformance suite. Keys are unique to the run, so a
// shared server is fine.
func TestEngine(t *testing.T, b Backend) {
	if b.TTL <= 0 {
		b.TTL = DefaultTTL
	}
	s := &suite{b: b, root: fmt.Sprintf("conf/r%d", time.Now().UnixNano())}
	t.Run("DocumentsAndCAS", s.documents)
	t.Run("ConcurrentCAS", s.concurrentCAS)
	t.Run("LeaseRevoked", s.leaseRevoked)
	t.Run("LeaseKeptAlive", s.leaseKeptAlive)
	t.Run("LeaseExpiresWhenCutOff", s.leaseExpires)
	t.Run("FencingRefusesStaleLeader", s.fencing)
	t.Run("ResignHandsOver", s.resign)
	t.Run("WatchResumesAfterDisconnect", s.watchResumes)
	t.Run("WatchCompacted", s.watchCompacted)
	t.Run("UnreachableReported", s.unreachable)
}

type suite struct {
	b    Backend
	root string
}

func (s *suite) key(t *testing.T, k string) string {
	return s.root + "/" + strings.ReplaceAll(t.Name(), "/", "-") + "/" + k
}

func (s *suite) open(t *testing.T) fleet.Engine { return s.b.Open(t, s.b.Addr) }

// openLinked returns an engine that reaches the server through a Link.
func (s *suite) openLinked(t *testing.T) (fleet.Engine, *Link) {
	l, err := NewLink("", s.b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	e := s.b.Open(t, l.Addr())
	t.Cleanup(func() { l.Close() }) // runs before Open's cleanup closes e: the engine sees a cut link
	return e, l
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func put(key, value string, prev int64) fleet.Txn {
	return fleet.Txn{Ops: []fleet.Op{{Key: key, Value: []byte(value), Prev: prev}}}
}

func mustCommit(t *testing.T, e fleet.Engine, txn fleet.Txn) int64 {
	t.Helper()
	rev, err := e.Commit(ctxFor(t, 10*time.Second), txn)
	if err != nil {
		t.Fatalf("commit %v: %v", txn.Ops, err)
	}
	return rev
}

func wantConflict(t *testing.T, err error, key string, got int64) {
	t.Helper()
	var ce *fleet.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, fleet.ErrConflict) {
		t.Fatalf("got %v, want a *ConflictError on %s", err, key)
	}
	if ce.Key != key || (got >= 0 && ce.Got != got) {
		t.Fatalf("conflict %+v: want key %s, found revision %d", ce, key, got)
	}
}

func (s *suite) documents(t *testing.T) {
	e := s.open(t)
	ctx := ctxFor(t, 30*time.Second)
	a, b := s.key(t, "a"), s.key(t, "b")
	if _, err := e.Get(ctx, a); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	r1 := mustCommit(t, e, put(a, "one", 0))
	d, err := e.Get(ctx, a)
	if err != nil || string(d.Value) != "one" || d.Revision != r1 || d.Created != r1 || d.Key != a {
		t.Fatalf("Get after create: %+v, %v; want one at revision %d", d, err, r1)
	}
	_, err = e.Commit(ctx, put(a, "again", 0))
	wantConflict(t, err, a, r1)
	r2 := mustCommit(t, e, put(a, "two", r1))
	if r2 <= r1 {
		t.Fatalf("revision went from %d to %d", r1, r2)
	}
	_, err = e.Commit(ctx, put(a, "stale", r1))
	wantConflict(t, err, a, r2)
	_, err = e.Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: b, Value: []byte("x"), Prev: 0}, {Key: a, Value: []byte("x"), Prev: r1}}})
	wantConflict(t, err, a, r2)
	if _, err := e.Get(ctx, b); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("a transaction with a failed compare wrote its other op: %v", err)
	}
	r3 := mustCommit(t, e, fleet.Txn{Ops: []fleet.Op{{Key: b, Value: []byte("bee"), Prev: 0}, {Key: a, Value: []byte("three"), Prev: fleet.Any}}})
	da, _ := e.Get(ctx, a)
	db, _ := e.Get(ctx, b)
	if da.Revision != r3 || db.Revision != r3 || string(da.Value) != "three" {
		t.Fatalf("one transaction, two revisions: %+v %+v, want both at %d", da, db, r3)
	}
	docs, lrev, err := e.List(ctx, s.key(t, ""))
	if err != nil || len(docs) != 2 || docs[0].Key != a || docs[1].Key != b || lrev < r3 {
		t.Fatalf("List: %+v at %d, %v; want a, b at %d or later", docs, lrev, err, r3)
	}
	_, err = e.Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: a, Delete: true, Prev: r1}}})
	wantConflict(t, err, a, r3)
	mustCommit(t, e, fleet.Txn{Ops: []fleet.Op{{Key: a, Delete: true, Prev: r3}}})
	mustCommit(t, e, fleet.Txn{Ops: []fleet.Op{{Key: a, Delete: true, Prev: fleet.Any}}})
	if _, err := e.Get(ctx, a); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
	for _, bad := range []string{"", "a//b", "../x", "a b", "x';--", "/lead", strings.Repeat("k", fleet.MaxKeyLen+1)} {
		if _, err := e.Get(ctx, bad); !errors.Is(err, fleet.ErrInvalidKey) {
			t.Errorf("Get(%q): %v, want ErrInvalidKey", bad, err)
		}
		if _, err := e.Commit(ctx, put(bad, "v", fleet.Any)); !errors.Is(err, fleet.ErrInvalidKey) {
			t.Errorf("Commit(%q): %v, want ErrInvalidKey", bad, err)
		}
	}
	if _, err := e.Commit(ctx, fleet.Txn{}); err == nil {
		t.Error("an empty transaction was accepted")
	}
	if _, err := e.Commit(ctx, put(s.key(t, "big"), strings.Repeat("x", fleet.MaxValueSize+1), fleet.Any)); err == nil {
		t.Error("a document over MaxValueSize was accepted")
	}
}

func (s *suite) concurrentCAS(t *testing.T) {
	e1, e2 := s.open(t), s.open(t)
	k := s.key(t, "n")
	mustCommit(t, e1, put(k, "0", 0))
	const writers, rounds = 4, 8
	var mu sync.Mutex
	wins := 0
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		e := e1
		if w%2 == 1 {
			e = e2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for r := 0; r < rounds; r++ {
				d, err := e.Get(ctx, k)
				if err != nil {
					errs <- err
					return
				}
				var n int
				fmt.Sscan(string(d.Value), &n)
				_, err = e.Commit(ctx, put(k, fmt.Sprint(n+1), d.Revision))
				switch {
				case err == nil:
					mu.Lock()
					wins++
					mu.Unlock()
				case errors.Is(err, fleet.ErrConflict):
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	d, err := e1.Get(ctxFor(t, 5*time.Second), k)
	if err != nil || string(d.Value) != fmt.Sprint(wins) || wins == 0 {
		t.Fatalf("after %d successful compare-and-swaps the counter is %q (%v): lost or doubled updates", wins, d.Value, err)
	}
}
