package fleettest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout/fleet"
)

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
