//go:build unix

package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
)

// The roles of the rolling process tests: agent hosts, which run the
// versions, and drivers, which drive the rollouts; killing a driver never
// touches what a host serves.
func init() {
	testchild.Register("agent", agentMain)
	testchild.Register("driver", driverMain)
}

// openChildEngine opens the engine a child process is told of.
func openChildEngine() (fleet.Engine, func(), error) {
	switch os.Getenv("FLEET_ENGINE") {
	case "etcd":
		e, err := etcdEngine(os.Getenv("FLEET_ENDPOINT"))
		if err != nil {
			return nil, nil, err
		}
		return e, func() { e.Close() }, nil
	case "postgres":
		e, db, err := openPostgres(os.Getenv("FLEET_ENDPOINT"), os.Getenv("FLEET_SCHEMA"))
		if err != nil {
			return nil, nil, err
		}
		return e, func() { e.Close(); db.Close() }, nil
	}
	return nil, nil, fmt.Errorf("FLEET_ENGINE %q", os.Getenv("FLEET_ENGINE"))
}

func joinChild(ctx context.Context, e fleet.Engine, version string, out *lineWriter) (*fleet.Member, error) {
	id := os.Getenv("FLEET_ID")
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, err := fleet.Join(ctx, e, fleet.Options{
		Namespace: os.Getenv("FLEET_NS"), ID: id, Host: os.Getenv("FLEET_HOST"),
		Version: version, LeaseTTL: testTTL, ProbeInterval: 200 * time.Millisecond, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return m, m.AwaitFresh(ctx)
}

// execUpgrader stands for graceful in the agent hosts: an upgrade takes
// FLEET_UPGRADE_DELAY, then the process replaces itself (exec, same PID,
// same output) with the version's binary, which starts as the new
// version and bakes, as a handoff's new process does.
type execUpgrader struct {
	id  string
	out *lineWriter
}

func (u execUpgrader) UpgradeTo(ctx context.Context, spec rollout.UpgradeSpec) error {
	d, _ := time.ParseDuration(os.Getenv("FLEET_UPGRADE_DELAY"))
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return ctx.Err()
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLEET_VERSION=") {
			env = append(env, kv)
		}
	}
	u.out.printf("exec %s %s", u.id, spec.Version)
	return syscall.Exec(spec.Binary, os.Args, append(env, "FLEET_VERSION="+spec.Version))
}

func (u execUpgrader) Promote(context.Context) error {
	u.out.printf("promote %s %s", u.id, os.Getenv("FLEET_VERSION"))
	return nil
}

func (u execUpgrader) Rollback(context.Context) error {
	return errors.New("no warm predecessor after an exec")
}

// agentMain is a host that runs FLEET_VERSION and an Agent. It prints:
//
//	ready <id> <version>
//	exec <id> <version>      (it replaces itself with that version)
//	promote <id> <version>   (its bake ended)
//	stale <id> / fresh <id>
func agentMain() int {
	id, version := os.Getenv("FLEET_ID"), os.Getenv("FLEET_VERSION")
	out := &lineWriter{}
	fail := func(err error) int { out.printf("error %s %v", id, err); return 1 }
	e, closeEngine, err := openChildEngine()
	if err != nil {
		return fail(err)
	}
	defer closeEngine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := joinChild(ctx, e, version, out)
	if err != nil {
		return fail(err)
	}
	defer m.Close()
	a, err := fleet.NewAgent(m, fleet.AgentOptions{
		Upgrader: execUpgrader{id: id, out: out},
		Binaries: fleet.PathTemplate(os.Getenv("FLEET_RELEASES")),
	})
	if err != nil {
		return fail(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(2)
	go func() { defer wg.Done(); reportHealth(ctx, id, m, out) }()
	go func() { defer wg.Done(); a.Run(ctx) }()
	out.printf("ready %s %s", id, version)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	return 0
}

// testRelease is the release document of the rolling process tests.
type testRelease struct {
	ID, Version, Previous string
	// Bad fails the analysis that follows the last batch.
	Bad bool
}

// driverMain is a member that drives the release named at
// Layout.Shared("release") while it leads; woken by SIGCONT, it asks
// host1 for v9 with the leadership it last had. It prints:
//
//	ready <id>
//	leading <id> <term> <unix nanoseconds>
//	stale-write <id> refused|applied <error>
func driverMain() int {
	id := os.Getenv("FLEET_ID")
	out := &lineWriter{}
	fail := func(err error) int { out.printf("error %s %v", id, err); return 1 }
	e, closeEngine, err := openChildEngine()
	if err != nil {
		return fail(err)
	}
	defer closeEngine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := joinChild(ctx, e, "driver", out)
	if err != nil {
		return fail(err)
	}
	defer m.Close()
	rels, err := m.Mirror(m.Layout().Shared("release"))
	if err != nil {
		return fail(err)
	}
	bake, _ := time.ParseDuration(os.Getenv("FLEET_BAKE"))
	var mu sync.Mutex
	var last *fleet.Lead
	d, err := fleet.NewDriver(m, fleet.DriverOptions{Drive: func(ctx context.Context, l *fleet.Lead) error {
		mu.Lock()
		last = l
		mu.Unlock()
		out.printf("leading %s %d %d", id, l.Term(), time.Now().UnixNano())
		return driveTestReleases(ctx, l, rels, bake)
	}})
	if err != nil {
		return fail(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); d.Run(ctx) }()
	out.printf("ready %s", id)
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGCONT)
	for s := range sig {
		if s == syscall.SIGTERM {
			return 0
		}
		// Woken after a SIGSTOP: ask host1 for v9 with the leadership
		// held before it, at once, before this process learns anything.
		mu.Lock()
		l := last
		mu.Unlock()
		if l == nil {
			continue
		}
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := l.SetDesired(wctx, "host1", fleet.Desired{Version: "v9", Rollout: "stale"})
		wcancel()
		if err != nil {
			out.printf("stale-write %s refused %v", id, err)
		} else {
			out.printf("stale-write %s applied", id)
		}
	}
	return 0
}

// driveTestReleases drives each new release document in turn.
func driveTestReleases(ctx context.Context, l *fleet.Lead, rels *fleet.Mirror, bake time.Duration) error {
	key := l.Member().Layout().Shared("release")
	current := func() testRelease {
		var r testRelease
		if d, ok := rels.Get(key); ok {
			json.Unmarshal(d.Value, &r)
		}
		return r
	}
	for {
		ch := rels.Changed()
		rel := current()
		if rel.ID == "" {
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		drive, err := fleet.DriveRollout(fleet.RolloutOptions{Plan: func(l *fleet.Lead) (rollout.Plan, error) {
			return testRolling(l, rel, bake)
		}})
		if err != nil {
			return err
		}
		rctx, stop := context.WithCancel(ctx)
		driven := make(chan error, 1)
		go func() { driven <- drive(rctx, l) }()
		var derr error
	wait:
		for {
			ch := rels.Changed()
			if current().ID != rel.ID {
				break
			}
			select {
			case <-ctx.Done():
				break wait
			case derr = <-driven:
				driven <- derr
				break wait
			case <-ch:
			}
		}
		stop()
		derr = <-driven
		if errors.Is(derr, fleet.ErrStepDown) || errors.Is(derr, fleet.ErrFenced) || ctx.Err() != nil {
			return derr
		}
	}
}

// testRolling: host by host, a bake on each, an analysis of two
// measurements after each host, and a final verdict that fails a bad
// release.
func testRolling(l *fleet.Lead, rel testRelease, bake time.Duration) (rollout.Plan, error) {
	pass := rollout.AnalyzerFunc(func(context.Context) (rollout.Verdict, string, error) {
		return rollout.Pass, "healthy", nil
	})
	steps, err := fleet.Rolling(l, fleet.RollingOptions{
		Hosts: []string{"host1", "host2", "host3"}, Version: rel.Version, Previous: rel.Previous, Rollout: rel.ID,
		Bake: bake, HealthTimeout: 30 * time.Second, HealthInterval: 50 * time.Millisecond,
		Analyzer: pass, Analysis: rollout.AnalysisOptions{Count: 2, Interval: 400 * time.Millisecond},
	})
	if err != nil {
		return rollout.Plan{}, err
	}
	verdict := rollout.AnalyzerFunc(func(context.Context) (rollout.Verdict, string, error) {
		if rel.Bad {
			return rollout.Fail, "the release is bad", nil
		}
		return rollout.Pass, "the release is good", nil
	})
	steps = append(steps, rollout.Analyze(verdict, rollout.AnalysisOptions{}).Named("verdict"))
	return rollout.Plan{ID: rel.ID, Steps: steps}, nil
}
