package fleettest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout/fleet"
)

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
