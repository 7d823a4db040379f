package fleettest

import (
	"errors"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout/fleet"
)

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
