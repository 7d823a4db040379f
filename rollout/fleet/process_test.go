//go:build unix

package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout/fleet"
)

// host is one instance process of a process test.
type host struct {
	id    string
	cmd   *exec.Cmd
	lines *testchild.Lines
	dead  bool
}

// cluster is the processes of one test and the test's own view of the
// engine.
type cluster struct {
	t     *testing.T
	b     *backend
	ns    string
	env   []string
	e     fleet.Engine
	keys  fleet.Layout
	hosts map[string]*host
	next  int
	steps int
	pause time.Duration
}

func newCluster(t *testing.T, b *backend, steps int, pause time.Duration, env ...string) *cluster {
	ns := namespace(t)
	c := &cluster{t: t, b: b, ns: ns, env: append(slices.Clone(b.env), env...), e: b.open(t, b.addr),
		keys: fleet.NewLayout(ns), hosts: map[string]*host{}, steps: steps, pause: pause}
	t.Cleanup(func() {
		for _, h := range c.hosts {
			if !h.dead {
				h.cmd.Process.Signal(syscall.SIGCONT)
				h.cmd.Process.Kill()
				<-h.lines.Done()
				h.cmd.Wait()
			}
		}
	})
	return c
}

// start runs a new instance on its own loopback address (127.0.0.2, .3,
// ...) and working directory, and waits until it is ready.
func (c *cluster) start() *host {
	c.t.Helper()
	c.next++
	id := fmt.Sprintf("host%d", c.next)
	ip := fmt.Sprintf("127.0.0.%d", 1+c.next)
	dir := filepath.Join(c.t.TempDir(), id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	cmd, err := testchild.Command(context.Background(), "instance", append(slices.Clone(c.env),
		"FLEET_ID="+id, "FLEET_HOST="+ip, "FLEET_NS="+c.ns,
		"FLEET_STEPS="+strconv.Itoa(c.steps), "FLEET_PAUSE="+c.pause.String())...)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	h := &host{id: id, cmd: cmd, lines: testchild.NewLines(id, out)}
	c.hosts[id] = h
	line := h.lines.AwaitPrefix(c.t, "ready "+id, 30*time.Second)
	if !strings.Contains(line, ip+":") {
		c.t.Fatalf("%s serves on %q, want an address on %s", id, line, ip)
	}
	return h
}

// kill sends SIGKILL and reaps the process.
func (c *cluster) kill(h *host) {
	c.t.Helper()
	if err := h.cmd.Process.Kill(); err != nil {
		c.t.Fatal(err)
	}
	<-h.lines.Done()
	testchild.Wait(c.t, h.id, h.cmd, 10*time.Second)
	h.dead = true
}

func (c *cluster) members() ([]fleet.MemberInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	docs, _, err := c.e.List(ctx, c.keys.Members())
	if err != nil {
		return nil, err
	}
	var out []fleet.MemberInfo
	for _, d := range docs {
		var mi fleet.MemberInfo
		if err := json.Unmarshal(d.Value, &mi); err != nil {
			return nil, err
		}
		out = append(out, mi)
	}
	return out, nil
}

// awaitMembers waits until the live members are exactly ids, ready.
func (c *cluster) awaitMembers(d time.Duration, ids ...string) {
	c.t.Helper()
	slices.Sort(ids)
	testchild.Eventually(c.t, fmt.Sprintf("members %v", ids), d, 20*time.Millisecond, func() error {
		ms, err := c.members()
		if err != nil {
			return err
		}
		var got []string
		for _, m := range ms {
			if m.State != fleet.StateReady {
				return fmt.Errorf("%s is %s", m.ID, m.State)
			}
			got = append(got, m.ID)
		}
		if !slices.Equal(got, ids) {
			return fmt.Errorf("members %v", got)
		}
		return nil
	})
}

// leader waits for a leader whose term is above after, and returns it
// with the term and the time it said it took the lead.
func (c *cluster) leader(after int64, d time.Duration) (*host, int64, time.Time) {
	c.t.Helper()
	var li fleet.LeaderInfo
	election := c.keys.Election(fleet.DefaultElection)
	testchild.Eventually(c.t, fmt.Sprintf("a leader with a term above %d", after), d, 10*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		v, term, err := c.e.Leader(ctx, election)
		if err != nil {
			return err
		}
		if term <= after {
			return fmt.Errorf("term %d", term)
		}
		li.Term = term
		return json.Unmarshal(v, &li)
	})
	h := c.hosts[li.Member]
	if h == nil || h.dead {
		c.t.Fatalf("the leader %q is not a live host of this test", li.Member)
	}
	prefix := fmt.Sprintf("leading %s %d ", h.id, li.Term)
	line := h.lines.AwaitPrefix(c.t, prefix, 10*time.Second)
	ns, err := strconv.ParseInt(strings.TrimPrefix(line, prefix), 10, 64)
	if err != nil {
		c.t.Fatalf("%s: %q", h.id, line)
	}
	return h, li.Term, time.Unix(0, ns)
}

// rolloutPhase reads the stored rollout's phase.
func (c *cluster) rolloutPhase() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := c.e.Get(ctx, c.keys.Rollout("fleet-proc"))
	if err != nil {
		return err.Error()
	}
	var env struct {
		State struct {
			Phase string `json:"phase"`
		} `json:"state"`
	}
	json.Unmarshal(d.Value, &env)
	return env.State.Phase
}

func trials(t *testing.T, def int) int {
	if s := os.Getenv("BATON_FLEET_TRIALS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("BATON_FLEET_TRIALS=%q", s)
		}
		return n
	}
	return def
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1)*p + 0.5)
	return s[i]
}

// TestProcessFailover runs three instance processes, kills the leader with
// SIGKILL, and measures how long until another leads; the killed member's
// record expires; the rollout resumes from the stored state and finishes.
// BATON_FLEET_TRIALS sets the number of kills (default 2).
func TestProcessFailover(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		n := trials(t, 2)
		c := newCluster(t, b, 12+4*n, 150*time.Millisecond)
		for range 3 {
			c.start()
		}
		c.awaitMembers(10*time.Second, "host1", "host2", "host3")
		lead, term, _ := c.leader(0, 10*time.Second)
		var takeovers []time.Duration
		for i := 0; i < n; i++ {
			killed := time.Now()
			c.kill(lead)
			var at time.Time
			lead, term, at = c.leader(term, 3*testTTL)
			took := at.Sub(killed)
			takeovers = append(takeovers, took)
			t.Logf("%s trial %d: killed the leader; %s leads at term %d after %s", b.name, i+1, lead.id, term, took.Round(time.Millisecond))
			var live []string
			for id, h := range c.hosts {
				if !h.dead {
					live = append(live, id)
				}
			}
			c.awaitMembers(3*testTTL, live...)
			c.start()
		}
		t.Logf("%s takeover after kill -9 of the leader, TTL %s, %d trials: p50 %s, p99 %s, max %s", b.name, testTTL, n,
			percentile(takeovers, 0.5).Round(time.Millisecond), percentile(takeovers, 0.99).Round(time.Millisecond), slices.Max(takeovers).Round(time.Millisecond))
		testchild.Eventually(t, "the rollout to succeed under its last leader", 60*time.Second, 50*time.Millisecond, func() error {
			if p := c.rolloutPhase(); p != "succeeded" {
				return fmt.Errorf("phase %q", p)
			}
			return nil
		})
		final := fmt.Sprintf("step-%d", c.steps)
		lead.lines.Await(t, "the last step applied on the leader", 10*time.Second, func(l string) bool {
			return strings.HasPrefix(l, "applied "+lead.id+" ") && strings.HasSuffix(l, " "+final)
		})
	})
}

// TestProcessPartition stops the leader with SIGSTOP until its lease
// expires: another instance takes over, and when the stopped one wakes up
// its first write, fenced by the leadership it had, is refused.
func TestProcessPartition(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		c := newCluster(t, b, 40, 200*time.Millisecond)
		for range 3 {
			c.start()
		}
		c.awaitMembers(10*time.Second, "host1", "host2", "host3")
		old, term, _ := c.leader(0, 10*time.Second)
		if err := old.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		next, nterm, at := c.leader(term, 3*testTTL)
		t.Logf("%s: %s stopped; %s leads at term %d after %s", b.name, old.id, next.id, nterm, at.Sub(stopped).Round(time.Millisecond))
		var others []string
		for id := range c.hosts {
			if id != old.id {
				others = append(others, id)
			}
		}
		c.awaitMembers(3*testTTL, others...)
		if err := old.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		line := old.lines.AwaitPrefix(t, "stale-write "+old.id, 10*time.Second)
		if !strings.Contains(line, "refused") || !strings.Contains(line, "fenced") {
			t.Fatalf("the woken former leader's write: %q, want it refused by the fence", line)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.e.Get(ctx, c.ns+"/stale-write"); !errors.Is(err, fleet.ErrNotFound) {
			t.Fatalf("the refused write is in the engine: %v", err)
		}
		// The woken instance registers again and follows the new leader.
		c.awaitMembers(3*testTTL, append(others, old.id)...)
		if _, term, err := c.e.Leader(ctx, c.keys.Election(fleet.DefaultElection)); err != nil || term != nterm {
			t.Fatalf("leader term after the wake-up: %d, %v; want %d", term, err, nterm)
		}
	})
}
