//go:build unix

package fleet_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout/fleet"
)

// outage takes the engine away from the instance processes and brings it
// back: etcd is stopped and restarted with its data; PostgreSQL (shared, so
// never restarted) refuses the instances' role and terminates its sessions.
type outage struct {
	name         string
	cut, restore func()
	writesDuring bool // the test's own engine can write while the instances are cut off
}

// pgRole gives the instances a login role of their own with the rights to
// use the engine's tables, so an outage can be theirs alone.
func pgRole(t *testing.T, p *pgEnv) (string, *outage) {
	role := "fleet_r" + p.schema[len("fleet_t"):]
	s := `"` + p.schema + `"`
	p.exec(t, `CREATE ROLE `+role+` LOGIN`,
		`GRANT USAGE ON SCHEMA `+s+` TO `+role,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA `+s+` TO `+role,
		`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA `+s+` TO `+role)
	terminate := `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '` + role + `'`
	t.Cleanup(func() { p.exec(t, `ALTER ROLE `+role+` NOLOGIN`, terminate, `DROP OWNED BY `+role, `DROP ROLE `+role) })
	return role, &outage{
		name:         "PostgreSQL refuses the instances' role and terminates their sessions",
		cut:          func() { p.exec(t, `ALTER ROLE `+role+` NOLOGIN`, terminate) },
		restore:      func() { p.exec(t, `ALTER ROLE `+role+` LOGIN`) },
		writesDuring: true,
	}
}

// engineOutage returns the outage of b and the environment that makes
// the instance processes subject to it.
func engineOutage(t *testing.T, b *backend) (*outage, []string) {
	if b.etcd != nil {
		return &outage{name: "etcd stopped and restarted", cut: b.etcd.Stop, restore: func() {
			if err := b.etcd.Restart(); err != nil {
				t.Fatal(err)
			}
		}}, nil
	}
	// The tables must exist before the grants.
	b.open(t, b.addr).Close()
	role, o := pgRole(t, b.pg)
	return o, []string{"FLEET_ENDPOINT=" + b.pg.dsnFor("", role)}
}

// TestProcessEngineOutage: mid-rollout the engine goes away. Every instance
// reports stale and keeps what it applied, the driver stops driving; when
// the engine is back every instance reports fresh, catches up on what was
// written meanwhile (PostgreSQL) or after (etcd), and the rollout resumes
// from its stored state and finishes.
func TestProcessEngineOutage(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		o, env := engineOutage(t, b)
		c := newCluster(t, b, 60, 200*time.Millisecond, env...)
		for range 3 {
			c.start()
		}
		c.awaitMembers(10*time.Second, "host1", "host2", "host3")
		progress := c.keys.Shared("progress")
		for _, h := range c.hosts {
			h.lines.AwaitPrefix(t, fmt.Sprintf("applied %s %s step-", h.id, progress), 20*time.Second)
		}
		t.Logf("%s: %s", b.name, o.name)
		o.cut()
		cut := time.Now()
		for _, h := range c.hosts {
			h.lines.AwaitPrefix(t, "stale "+h.id, 10*time.Second)
		}
		t.Logf("%s: every instance reported stale within %s", b.name, time.Since(cut).Round(time.Millisecond))
		if phase := c.rolloutPhaseWhenReachable(o.writesDuring); phase == "succeeded" {
			t.Fatal("the rollout finished before the outage: make it longer")
		}
		probe := c.keys.Shared("probe")
		if o.writesDuring {
			c.put(probe, "written-during-the-outage")
		}
		o.restore()
		if !o.writesDuring {
			c.put(probe, "written-after-the-outage")
		}
		back := time.Now()
		for _, h := range c.hosts {
			var early string
			h.lines.Await(t, "fresh "+h.id, 30*time.Second, func(l string) bool {
				if strings.HasPrefix(l, "applied "+h.id+" "+probe) {
					early = l
				}
				return strings.HasPrefix(l, "fresh "+h.id)
			})
			if early != "" {
				t.Fatalf("%s applied %q while it reported stale", h.id, early)
			}
			h.lines.AwaitPrefix(t, "applied "+h.id+" "+probe+" written-", 20*time.Second)
		}
		t.Logf("%s: every instance fresh and caught up %s after the engine came back", b.name, time.Since(back).Round(time.Millisecond))
		testchild.Eventually(t, "the rollout to resume and succeed", 60*time.Second, 50*time.Millisecond, func() error {
			if p := c.rolloutPhase(); p != "succeeded" {
				return fmt.Errorf("phase %q", p)
			}
			return nil
		})
	})
}

// put writes key through the test's own engine, retrying while it
// reconnects.
func (c *cluster) put(key, value string) {
	c.t.Helper()
	testchild.Eventually(c.t, "writing "+key, 30*time.Second, 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.e.Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: key, Value: []byte(value), Prev: fleet.Any}}})
		return err
	})
}

// rolloutPhaseWhenReachable reads the phase if the test's engine can; ""
// otherwise.
func (c *cluster) rolloutPhaseWhenReachable(reachable bool) string {
	if !reachable {
		return ""
	}
	return c.rolloutPhase()
}
