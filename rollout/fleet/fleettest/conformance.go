package fleettest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout/fleet"
)

// DefaultTTL is the lease TTL of the suite when Backend.TTL is zero.
const DefaultTTL = 2 * time.Second

// Backend tells TestEngine how to reach one engine server.
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

func (s *suite) leaseRevoked(t *testing.T) {
	e := s.open(t)
	ctx := ctxFor(t, 30*time.Second)
	l, err := e.Grant(ctx, s.b.TTL)
	if err != nil {
		t.Fatal(err)
	}
	if l.ID() == 0 || l.TTL() < s.b.TTL {
		t.Fatalf("lease %d with TTL %s, want an id and at least %s", l.ID(), l.TTL(), s.b.TTL)
	}
	k := s.key(t, "leased")
	mustCommit(t, e, fleet.Txn{Ops: []fleet.Op{{Key: k, Value: []byte("v"), Lease: l.ID()}}})
	d, err := e.Get(ctx, k)
	if err != nil || d.Lease != l.ID() {
		t.Fatalf("leased document %+v, %v: want lease %d", d, err, l.ID())
	}
	if err := l.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Revoke(ctx); err != nil {
		t.Fatalf("second Revoke: %v", err)
	}
	waitClosed(t, l.Done(), time.Second, "the revoked lease's Done")
	if _, err := e.Get(ctx, k); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("a revoked lease's document is still there: %v", err)
	}
	_, err = e.Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: k, Value: []byte("v"), Lease: l.ID()}}})
	if !errors.Is(err, fleet.ErrLeaseLost) {
		t.Fatalf("write with a revoked lease: %v, want ErrLeaseLost", err)
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("waited %s for %s to close", d, what)
	}
}

func (s *suite) leaseKeptAlive(t *testing.T) {
	e := s.open(t)
	ctx := ctxFor(t, 30*time.Second)
	l, err := e.Grant(ctx, s.b.TTL)
	if err != nil {
		t.Fatal(err)
	}
	k := s.key(t, "kept")
	mustCommit(t, e, fleet.Txn{Ops: []fleet.Op{{Key: k, Value: []byte("v"), Lease: l.ID()}}})
	// Over three TTLs the keep-alive must have renewed the lease at least
	// twice: the property is about time, so time is what the test waits.
	select {
	case <-l.Done():
		t.Fatal("a lease kept alive was lost")
	case <-time.After(3 * l.TTL()):
	}
	if _, err := e.Get(ctx, k); err != nil {
		t.Fatalf("the document of a lease kept alive: %v", err)
	}
	if err := l.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
}

// watchFor reads ch until match holds for an event, and fails after d.
func watchFor(t *testing.T, ch <-chan fleet.WatchResponse, d time.Duration, what string, match func(fleet.Event) bool) fleet.Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed while waiting for %s", what)
			}
			if r.Err != nil {
				t.Fatalf("watch failed while waiting for %s: %v", what, r.Err)
			}
			for _, ev := range r.Events {
				if match(ev) {
					return ev
				}
			}
		case <-timer.C:
			t.Fatalf("waited %s for %s", d, what)
		}
	}
}

func (s *suite) leaseExpires(t *testing.T) {
	a, link := s.openLinked(t)
	b := s.open(t)
	ctx := ctxFor(t, 60*time.Second)
	l, err := a.Grant(ctx, s.b.TTL)
	if err != nil {
		t.Fatal(err)
	}
	k := s.key(t, "member")
	rev := mustCommit(t, a, fleet.Txn{Ops: []fleet.Op{{Key: k, Value: []byte("alive"), Lease: l.ID()}}})
	w := b.Watch(ctx, s.key(t, ""), rev)
	cut := time.Now()
	link.Cut()
	ev := watchFor(t, w, 3*l.TTL(), "the cut-off holder's document to expire", func(ev fleet.Event) bool {
		return ev.Type == fleet.Delete && ev.Doc.Key == k
	})
	gone := time.Since(cut)
	if ev.Doc.Revision <= rev {
		t.Fatalf("delete at revision %d, the document was written at %d", ev.Doc.Revision, rev)
	}
	t.Logf("document of a cut-off lease (TTL %s) deleted %s after the cut", l.TTL(), gone.Round(time.Millisecond))
	waitClosed(t, l.Done(), 2*l.TTL(), "the cut-off holder's lease Done")
	link.Restore()
	_, err = a.Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: k, Value: []byte("back"), Lease: l.ID()}}})
	if !errors.Is(err, fleet.ErrLeaseLost) {
		t.Fatalf("write with the expired lease after the link healed: %v, want ErrLeaseLost", err)
	}
}

type campaign struct {
	l   fleet.Leadership
	err error
}

func (s *suite) fencing(t *testing.T) {
	a, link := s.openLinked(t)
	b := s.open(t)
	ctx := ctxFor(t, 60*time.Second)
	election, doc := s.key(t, "driver"), s.key(t, "state")
	la, err := a.Grant(ctx, s.b.TTL)
	if err != nil {
		t.Fatal(err)
	}
	leadA, err := a.Campaign(ctx, election, la, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if v, term, err := b.Leader(ctx, election); err != nil || string(v) != "a" || term != leadA.Term() {
		t.Fatalf("Leader: %q term %d, %v; want a at term %d", v, term, err, leadA.Term())
	}
	rev := mustCommit(t, a, fleet.Txn{Fence: leadA, Ops: []fleet.Op{{Key: doc, Value: []byte("a1"), Prev: 0}}})

	lb, err := b.Grant(ctx, s.b.TTL)
	if err != nil {
		t.Fatal(err)
	}
	won := make(chan campaign, 1)
	go func() {
		l, err := b.Campaign(ctx, election, lb, []byte("b"))
		won <- campaign{l, err}
	}()
	// A renews its lease; B must not win while it does.
	select {
	case c := <-won:
		t.Fatalf("b won the election (%v, %v) while a held it", c.l, c.err)
	case <-time.After(s.b.TTL + s.b.TTL/2):
	}
	link.Cut()
	cut := time.Now()
	var leadB fleet.Leadership
	select {
	case c := <-won:
		if c.err != nil {
			t.Fatal(c.err)
		}
		leadB = c.l
	case <-time.After(3 * s.b.TTL):
		t.Fatalf("b did not take over within %s of a being cut off", 3*s.b.TTL)
	}
	t.Logf("takeover %s after the leader was cut off (TTL %s)", time.Since(cut).Round(time.Millisecond), la.TTL())
	if leadB.Term() <= leadA.Term() {
		t.Fatalf("new term %d is not above the deposed one %d", leadB.Term(), leadA.Term())
	}
	revB := mustCommit(t, b, fleet.Txn{Fence: leadB, Ops: []fleet.Op{{Key: doc, Value: []byte("b1"), Prev: rev}}})
	link.Restore()

	// A wakes up believing nothing happened: its fenced write (with the
	// right revision, so only the fence can refuse it) must be refused.
	_, err = a.Commit(ctx, fleet.Txn{Fence: leadA, Ops: []fleet.Op{{Key: doc, Value: []byte("a2"), Prev: revB}}})
	var fe *fleet.FenceError
	if !errors.As(err, &fe) || !errors.Is(err, fleet.ErrFenced) || fe.Term != leadA.Term() {
		t.Fatalf("the deposed leader's write: %v, want a *FenceError for term %d", err, leadA.Term())
	}
	waitClosed(t, leadA.Done(), 2*s.b.TTL, "the deposed leadership's Done")
	d, err := b.Get(ctx, doc)
	if err != nil || string(d.Value) != "b1" || d.Revision != revB {
		t.Fatalf("after the refused write the document is %q at %d (%v), want b1 at %d", d.Value, d.Revision, err, revB)
	}
	// The same write without the fence goes through: the fence, not the
	// revision, is what refused it.
	if _, err := a.Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: s.key(t, "unfenced"), Value: []byte("a"), Prev: 0}}}); err != nil {
		t.Fatalf("the deposed leader's engine cannot write at all (%v): the check above proves nothing", err)
	}
	if v, term, err := a.Leader(ctx, election); err != nil || string(v) != "b" || term != leadB.Term() {
		t.Fatalf("Leader after the takeover: %q term %d, %v; want b at %d", v, term, err, leadB.Term())
	}
	if err := leadB.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx, fleet.Txn{Fence: leadB, Ops: []fleet.Op{{Key: doc, Value: []byte("b2"), Prev: revB}}}); !errors.Is(err, fleet.ErrFenced) {
		t.Fatalf("write fenced by a resigned leadership: %v, want ErrFenced", err)
	}
	if _, _, err := b.Leader(ctx, election); !errors.Is(err, fleet.ErrNoLeader) {
		t.Fatalf("Leader after the only leader resigned: %v, want ErrNoLeader", err)
	}
	lc, err := b.Grant(ctx, s.b.TTL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Campaign(ctx, election, lb, []byte("b")); err != nil {
		t.Fatalf("campaign of an idle election: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := b.Campaign(cctx, election, lc, []byte("c")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("campaign against a live leader until ctx ends: %v, want context.DeadlineExceeded", err)
	}
}

func (s *suite) resign(t *testing.T) {
	a, b := s.open(t), s.open(t)
	ctx := ctxFor(t, 30*time.Second)
	election := s.key(t, "driver")
	la, err := a.Grant(ctx, s.b.TTL)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Grant(ctx, s.b.TTL)
	if err != nil {
		t.Fatal(err)
	}
	leadA, err := a.Campaign(ctx, election, la, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	won := make(chan campaign, 1)
	go func() {
		l, err := b.Campaign(ctx, election, lb, []byte("b"))
		won <- campaign{l, err}
	}()
	if err := leadA.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, leadA.Done(), time.Second, "the resigned leadership's Done")
	select {
	case c := <-won:
		if c.err != nil {
			t.Fatal(c.err)
		}
		if c.l.Term() <= leadA.Term() {
			t.Fatalf("term %d after %d", c.l.Term(), leadA.Term())
		}
	case <-time.After(s.b.TTL):
		t.Fatalf("a resignation was not handed over within %s (less than a TTL)", s.b.TTL)
	}
	// A campaign whose lease is lost returns ErrLeaseLost.
	go func() {
		l, err := a.Campaign(ctx, election, la, []byte("a"))
		won <- campaign{l, err}
	}()
	if err := la.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-won:
		if !errors.Is(c.err, fleet.ErrLeaseLost) {
			t.Fatalf("campaign with a revoked lease: %v, want ErrLeaseLost", c.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a campaign whose lease was revoked did not return")
	}
}

func (s *suite) watchResumes(t *testing.T) {
	w, link := s.openLinked(t)
	e := s.open(t)
	ctx := ctxFor(t, 60*time.Second)
	p := s.key(t, "")
	k := func(n int) string { return s.key(t, fmt.Sprintf("k%d", n)) }
	start := mustCommit(t, e, put(s.key(t, "start"), "", 0))
	wctx, cancel := context.WithCancel(ctx)
	ch := w.Watch(wctx, p, start)
	r1 := mustCommit(t, e, put(k(1), "1", 0))
	watchFor(t, ch, 10*time.Second, "the first put", func(ev fleet.Event) bool { return ev.Doc.Key == k(1) })
	link.Cut()
	want := []string{"put " + k(2), "delete " + k(1), "put " + k(3)}
	mustCommit(t, e, put(k(2), "2", 0))
	mustCommit(t, e, fleet.Txn{Ops: []fleet.Op{{Key: k(1), Delete: true, Prev: r1}}})
	last := mustCommit(t, e, put(k(3), "3", 0))
	link.Restore()
	var got []string
	prev := r1
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for len(got) < len(want) {
		select {
		case r, ok := <-ch:
			if !ok || r.Err != nil {
				t.Fatalf("watch ended across the disconnect (%v); got %v", r.Err, got)
			}
			for _, ev := range r.Events {
				if ev.Doc.Revision <= prev {
					t.Fatalf("event %s %s at revision %d after %d: repeated or out of order", ev.Type, ev.Doc.Key, ev.Doc.Revision, prev)
				}
				prev = ev.Doc.Revision
				got = append(got, ev.Type.String()+" "+ev.Doc.Key)
				if ev.Type == fleet.Delete && ev.Doc.Value != nil {
					t.Fatalf("a delete event carries a value: %+v", ev)
				}
			}
		case <-timer.C:
			t.Fatalf("after the link healed the watch delivered %v, want %v", got, want)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events across the disconnect: %v, want %v", got, want)
	}
	if prev != last {
		t.Fatalf("last event at %d, the last write was at %d", prev, last)
	}
	// A new watch from the last revision seen resumes exactly there.
	cancel()
	r5 := mustCommit(t, e, put(k(5), "5", 0))
	ch = w.Watch(ctx, p, last)
	ev := watchFor(t, ch, 10*time.Second, "the write made between two watches", func(fleet.Event) bool { return true })
	if ev.Doc.Key != k(5) || ev.Doc.Revision != r5 || string(ev.Doc.Value) != "5" {
		t.Fatalf("resumed watch delivered %+v first, want the put of %s at %d", ev, k(5), r5)
	}
}

func (s *suite) watchCompacted(t *testing.T) {
	e := s.open(t)
	c, ok := e.(fleet.Compactor)
	if !ok {
		t.Skip("the engine is not a fleet.Compactor")
	}
	ctx := ctxFor(t, 30*time.Second)
	first := mustCommit(t, e, put(s.key(t, "a"), "1", 0))
	mustCommit(t, e, put(s.key(t, "a"), "2", fleet.Any))
	last := mustCommit(t, e, put(s.key(t, "a"), "3", fleet.Any))
	if err := c.Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	ch := e.Watch(ctx, s.key(t, ""), first)
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				t.Fatal("watch from a compacted revision closed without ErrCompacted")
			}
			if r.Err != nil {
				if !errors.Is(r.Err, fleet.ErrCompacted) {
					t.Fatalf("watch from a compacted revision: %v, want ErrCompacted", r.Err)
				}
				if _, ok := <-ch; ok {
					t.Fatal("watch went on after its error")
				}
				return
			}
			if len(r.Events) > 0 && r.Events[0].Doc.Revision <= first+1 {
				t.Fatalf("watch from compacted revision %d delivered %+v", first, r.Events[0])
			}
		case <-timer.C:
			t.Fatal("no ErrCompacted from a watch of a compacted revision")
		}
	}
}

func (s *suite) unreachable(t *testing.T) {
	e, link := s.openLinked(t)
	ping := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return e.Ping(ctx)
	}
	if err := ping(10 * time.Second); err != nil {
		t.Fatalf("Ping of a healthy engine: %v", err)
	}
	link.Cut()
	if err := ping(time.Second); !errors.Is(err, fleet.ErrUnreachable) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping through a cut link: %v, want ErrUnreachable", err)
	}
	link.Restore()
	deadline := time.Now().Add(15 * time.Second)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		err := ping(time.Second)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ping still fails 15 s after the link healed: %v", err)
		}
		<-poll.C
	}
}
