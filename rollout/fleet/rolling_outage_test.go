//go:build unix

package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
)

// TestProcessRollingOutage: mid-rollout, while a host bakes, the engine
// goes away (etcd stopped, PostgreSQL refusing the processes' role and
// terminating their sessions) for longer than the bake. Every host reports
// stale and changes nothing it serves (no upgrade, no promotion: the bake
// does not end while stale), the stored rollout does not move; when the
// engine is back, the rollout resumes and every host ends on the release.
func TestProcessRollingOutage(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		o, env := engineOutage(t, b)
		c := newCluster(t, b, 0, 0, env...)
		c.startAgents()
		for range 2 {
			c.startDriver("2s")
		}
		rel := testRelease{ID: "rel-outage", Previous: "v1", Version: "v2"}
		c.putRelease(rel)
		testchild.Eventually(t, "a host baking", 60*time.Second, 5*time.Millisecond, func() error { return c.inKind(rel.ID, "bake") })
		before, err := c.status(rel.ID)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s while %s runs", b.name, o.name, before.Steps[before.Current].Name)
		o.cut()
		for _, id := range agentHosts {
			c.hosts[id].lines.AwaitPrefix(t, "stale "+id, 10*time.Second)
		}
		// The outage outlasts the bake: a host that ended its bake or
		// upgraded meanwhile would say so now.
		outage := time.NewTimer(3 * time.Second)
		<-outage.C
		if o.writesDuring {
			after, err := c.status(rel.ID)
			if err != nil {
				t.Fatal(err)
			}
			if after.Current != before.Current || after.Revision != before.Revision {
				t.Fatalf("the rollout moved during the outage: step %d revision %d, then step %d revision %d", before.Current, before.Revision, after.Current, after.Revision)
			}
		}
		o.restore()
		for _, id := range agentHosts {
			var early string
			c.hosts[id].lines.Await(t, "fresh "+id, 30*time.Second, func(l string) bool {
				if strings.HasPrefix(l, "exec ") || strings.HasPrefix(l, "promote ") {
					early = l
				}
				return strings.HasPrefix(l, "fresh "+id)
			})
			if early != "" {
				t.Fatalf("%s changed what it serves while stale: %q", id, early)
			}
		}
		c.awaitRollout(rel.ID, rollout.PhaseSucceeded, rel.Version)
	})
}

// TestProcessRollingPartition stops the leading driver with SIGSTOP while
// a host bakes, until its lease expires: another driver takes over and
// finishes the rollout. The stopped one is then woken and at once asks
// host1 for v9 with the leadership it had: the write is refused by the
// fence (without fencing host1 would be asked for v9, and would run it),
// and every desired state the engine took after the takeover is of the
// new term, so no step ran in two places at once.
func TestProcessRollingPartition(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		c := newCluster(t, b, 0, 0)
		c.startAgents()
		for range 2 {
			c.startDriver("1s")
		}
		w := c.watchDesired()
		rel := testRelease{ID: "rel-partition", Previous: "v1", Version: "v2"}
		c.putRelease(rel)
		testchild.Eventually(t, "a host baking", 60*time.Second, 5*time.Millisecond, func() error { return c.inKind(rel.ID, "bake") })
		old, term := c.currentLeader()
		if err := old.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		next, nterm, at := c.leader(term, 3*testTTL)
		t.Logf("%s: %s stopped at term %d; %s leads at term %d after %s", b.name, old.id, term, next.id, nterm, at.Sub(stopped).Round(time.Millisecond))
		c.awaitRollout(rel.ID, rollout.PhaseSucceeded, rel.Version)
		if err := old.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		line := old.lines.AwaitPrefix(t, "stale-write "+old.id, 10*time.Second)
		if !strings.Contains(line, "refused") || !strings.Contains(line, "fenced") {
			t.Fatalf("the woken former leader's desired state: %q, want it refused by the fence", line)
		}
		// The woken driver learns it lost its lease, or has a write
		// refused, and campaigns again behind the new leader.
		testchild.Eventually(t, "the woken driver back in the fleet", 3*testTTL, 20*time.Millisecond, func() error {
			ms, err := c.members()
			if err != nil {
				return err
			}
			for _, m := range ms {
				if m.ID == old.id {
					return nil
				}
			}
			return fmt.Errorf("%s not registered", old.id)
		})
		c.awaitRollout(rel.ID, rollout.PhaseSucceeded, rel.Version)
		writes := w.stop()
		seenNew := false
		for _, d := range writes {
			if d.Term >= nterm {
				seenNew = true
			} else if seenNew {
				t.Fatalf("a desired state of term %d (%s %s) was written after the takeover at term %d", d.Term, d.Version, d.At, nterm)
			}
		}
		for _, d := range writes {
			if d.Version == "v9" {
				t.Fatalf("the woken driver's desired state was applied: %+v", d)
			}
		}
		if !seenNew {
			t.Fatalf("no desired state written at the new term %d: %+v", nterm, writes)
		}
		if _, t2, err := c.e.Leader(context.Background(), c.keys.Election(fleet.DefaultElection)); err != nil || t2 != nterm {
			t.Fatalf("leader term after the wake-up: %d, %v; want %d", t2, err, nterm)
		}
	})
}

// desiredWatch records every write of a desired state, in engine order.
type desiredWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	docs   []fleet.Desired
}

func (c *cluster) watchDesired() *desiredWatch {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	_, rev, err := c.e.List(ctx, c.keys.Desired(""))
	if err != nil {
		cancel()
		c.t.Fatal(err)
	}
	w := &desiredWatch{cancel: cancel, done: make(chan struct{})}
	ch := c.e.Watch(ctx, c.keys.Desired(""), rev)
	go func() {
		defer close(w.done)
		for r := range ch {
			for _, ev := range r.Events {
				var d fleet.Desired
				if ev.Type == fleet.Put && json.Unmarshal(ev.Doc.Value, &d) == nil {
					w.mu.Lock()
					w.docs = append(w.docs, d)
					w.mu.Unlock()
				}
			}
		}
	}()
	c.t.Cleanup(func() { w.stop() })
	return w
}

func (w *desiredWatch) stop() []fleet.Desired {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.docs
}
