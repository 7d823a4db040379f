//go:build unix

package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
)

var agentHosts = []string{"host1", "host2", "host3"}

// startRole runs a child of role as member id on its own loopback address
// and working directory, and waits for its "ready <id>" line.
func (c *cluster) startRole(role, id string, env ...string) *host {
	c.t.Helper()
	c.next++
	dir := filepath.Join(c.t.TempDir(), id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	cmd, err := testchild.Command(context.Background(), role, append(slices.Clone(c.env),
		append([]string{"FLEET_ID=" + id, fmt.Sprintf("FLEET_HOST=127.0.0.%d", 1+c.next), "FLEET_NS=" + c.ns}, env...)...)...)
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
	h.lines.AwaitPrefix(c.t, "ready "+id, 30*time.Second)
	return h
}

// startAgents starts the agent hosts on v1, each with releases v1 to v9
// in its own directory (links to the test binary).
func (c *cluster) startAgents() {
	c.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, id := range agentHosts {
		root := filepath.Join(c.t.TempDir(), id+"-releases")
		for i := 1; i <= 9; i++ {
			d := filepath.Join(root, fmt.Sprintf("v%d", i))
			if err := os.MkdirAll(d, 0o755); err != nil {
				c.t.Fatal(err)
			}
			if err := os.Symlink(exe, filepath.Join(d, "bin")); err != nil {
				c.t.Fatal(err)
			}
		}
		c.startRole("agent", id, "FLEET_VERSION=v1", "FLEET_UPGRADE_DELAY=500ms",
			"FLEET_RELEASES="+filepath.Join(root, fleet.VersionPlaceholder, "bin"))
	}
}

// startDriver starts a driver whose rollouts bake each host for bake (1s
// if empty).
func (c *cluster) startDriver(bake ...string) *host {
	c.t.Helper()
	b := "1s"
	if len(bake) > 0 {
		b = bake[0]
	}
	return c.startRole("driver", fmt.Sprintf("d%d", c.next+1), "FLEET_BAKE="+b)
}

func (c *cluster) putRelease(r testRelease) {
	c.t.Helper()
	b, _ := json.Marshal(r)
	c.put(c.keys.Shared("release"), string(b))
}

func (c *cluster) status(id string) (rollout.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return fleet.ReadStatus(ctx, c.e, c.keys, id)
}

func (c *cluster) observed() (map[string]fleet.Observed, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out := map[string]fleet.Observed{}
	for _, id := range agentHosts {
		o, err := fleet.ReadObserved(ctx, c.e, c.keys, id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		out[id] = o
	}
	return out, nil
}

// awaitRollout waits until rollout id ends in phase want with every host
// serving version, ready.
func (c *cluster) awaitRollout(id string, want rollout.Phase, version string) rollout.Status {
	c.t.Helper()
	var st rollout.Status
	testchild.Eventually(c.t, fmt.Sprintf("%s %s, every host on %s", id, want, version), 90*time.Second, 50*time.Millisecond, func() error {
		var err error
		if st, err = c.status(id); err != nil {
			return err
		}
		if st.Phase != want {
			return fmt.Errorf("phase %q (%s)", st.Phase, st.Reason)
		}
		obs, err := c.observed()
		if err != nil {
			return err
		}
		for h, o := range obs {
			if o.Version != version || o.State != fleet.StateReady || o.Error != "" {
				return fmt.Errorf("%s: %+v", h, o)
			}
		}
		return nil
	})
	return st
}

// stepKinds are the moments a driver is killed in: while a host of a
// batch upgrades, while one bakes, inside an analysis, inside a rollback.
var stepKinds = []string{"batch", "bake", "analysis", "rollback"}

// inKind reports whether rollout id is at that moment now.
func (c *cluster) inKind(id, kind string) error {
	st, err := c.status(id)
	if err != nil {
		return err
	}
	if kind == "rollback" {
		if st.Phase == rollout.PhaseRollingBack {
			return nil
		}
		return fmt.Errorf("phase %q", st.Phase)
	}
	if st.Phase != rollout.PhaseRunning || st.Current < 0 || st.Current >= len(st.Steps) {
		return fmt.Errorf("phase %q at step %d", st.Phase, st.Current)
	}
	s := st.Steps[st.Current]
	switch kind {
	case "analysis":
		if s.Kind == rollout.KindAnalyze && s.Name != "verdict" {
			return nil
		}
	case "batch", "bake":
		if s.Kind != rollout.KindReplace {
			break
		}
		obs, err := c.observed()
		if err != nil {
			return err
		}
		want := map[string]string{"batch": fleet.StateUpgrading, "bake": fleet.StateBaking}[kind]
		for _, o := range obs {
			if o.State == want {
				return nil
			}
		}
	}
	return fmt.Errorf("at %s (%s)", s.Name, s.Kind)
}

// TestProcessRollingKills drives rolling updates of three agent hosts from
// three driver processes and kills the leading driver with SIGKILL inside
// each kind of step in turn: while a host upgrades, while one bakes,
// inside an analysis, inside a rollback. Each time another driver takes
// over and the rollout ends as it would have without the kill: a good
// release on every host, a bad one rolled back on every host. The hosts
// are never touched. BATON_FLEET_TRIALS sets the number of kills (default
// 4, one per kind); takeover p50 and p99 are logged.
func TestProcessRollingKills(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		n := trials(t, len(stepKinds))
		c := newCluster(t, b, 0, 0)
		c.startAgents()
		for range 3 {
			c.startDriver()
		}
		c.leader(0, 10*time.Second)
		version := 1
		var takeovers []time.Duration
		for i := range n {
			kind := stepKinds[i%len(stepKinds)]
			rel := testRelease{ID: fmt.Sprintf("rel-%d", i), Previous: fmt.Sprintf("v%d", version), Version: fmt.Sprintf("v%d", version%9+1), Bad: kind == "rollback"}
			c.putRelease(rel)
			testchild.Eventually(t, fmt.Sprintf("%s inside a %s step", rel.ID, kind), 60*time.Second, 5*time.Millisecond, func() error {
				return c.inKind(rel.ID, kind)
			})
			lead, term := c.currentLeader()
			killed := time.Now()
			c.kill(lead)
			next, nterm, at := c.leader(term, 3*testTTL)
			took := at.Sub(killed)
			takeovers = append(takeovers, took)
			t.Logf("%s trial %d: killed %s inside step kind %q of %s; %s leads at term %d after %s", b.name, i+1, lead.id, kind, rel.ID, next.id, nterm, took.Round(time.Millisecond))
			c.startDriver()
			if rel.Bad {
				st := c.awaitRollout(rel.ID, rollout.PhaseRolledBack, rel.Previous)
				checkRolledBack(t, st)
			} else {
				c.awaitRollout(rel.ID, rollout.PhaseSucceeded, rel.Version)
				version = version%9 + 1
			}
		}
		t.Logf("%s takeover after kill -9 of the driver inside a step, TTL %s, %d trials: p50 %s, p99 %s, max %s", b.name, testTTL, n,
			percentile(takeovers, 0.5).Round(time.Millisecond), percentile(takeovers, 0.99).Round(time.Millisecond), slices.Max(takeovers).Round(time.Millisecond))
	})
}

// currentLeader returns the leading process and its term, from the
// engine.
func (c *cluster) currentLeader() (*host, int64) {
	c.t.Helper()
	var li fleet.LeaderInfo
	testchild.Eventually(c.t, "a leader", 10*time.Second, 10*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		v, term, err := c.e.Leader(ctx, c.keys.Election(fleet.DefaultElection))
		if err != nil {
			return err
		}
		li.Term = term
		return json.Unmarshal(v, &li)
	})
	h := c.hosts[li.Member]
	if h == nil || h.dead {
		c.t.Fatalf("the leader %q is not a live process of this test", li.Member)
	}
	return h, li.Term
}

// checkRolledBack: every batch was undone, the last one first.
func checkRolledBack(t *testing.T, st rollout.Status) {
	t.Helper()
	var last time.Time
	for i := len(st.Steps) - 1; i >= 0; i-- {
		s := st.Steps[i]
		if s.Kind != rollout.KindReplace {
			continue
		}
		if s.Status != rollout.StepRolledBack {
			t.Fatalf("step %s is %s after the rollback, want rolled back", s.Name, s.Status)
		}
		if s.RollbackFinishedAt.Before(last) {
			t.Fatalf("step %s was rolled back before a later batch", s.Name)
		}
		last = s.RollbackFinishedAt
	}
	if !strings.Contains(st.Reason, "bad") {
		t.Logf("rolled back: %s", st.Reason)
	}
}
