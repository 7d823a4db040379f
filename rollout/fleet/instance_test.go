//go:build unix

package fleet_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
)

// The role runs processes and signals them, as only Unix can.
func init() {
	testchild.Register("instance", instanceMain)
}

// instanceMain is one host of the process tests: a member of the fleet on
// its own loopback address and working directory, a driver that drives a
// plan of hooks and pauses, and a mirror of the shared documents. It
// prints one line per event the tests wait for:
//
//	ready <id> <address>
//	leading <id> <term> <unix nanoseconds>
//	applied <id> <key> <value>
//	stale <id> / fresh <id>
//	stale-write <id> refused|applied <error>
func instanceMain() int {
	id := os.Getenv("FLEET_ID")
	out := &lineWriter{}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	fail := func(err error) int { out.printf("error %s %v", id, err); return 1 }

	var e fleet.Engine
	switch os.Getenv("FLEET_ENGINE") {
	case "etcd":
		eng, err := etcdEngine(os.Getenv("FLEET_ENDPOINT"))
		if err != nil {
			return fail(err)
		}
		e = eng
	case "postgres":
		eng, db, err := openPostgres(os.Getenv("FLEET_ENDPOINT"), os.Getenv("FLEET_SCHEMA"))
		if err != nil {
			return fail(err)
		}
		defer db.Close()
		e = eng
	default:
		return fail(fmt.Errorf("FLEET_ENGINE %q", os.Getenv("FLEET_ENGINE")))
	}
	defer e.Close()
	// Its own address, as a host of its own would have.
	ln, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("FLEET_HOST"), "0"))
	if err != nil {
		return fail(err)
	}
	defer ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := fleet.Join(ctx, e, fleet.Options{
		Namespace: os.Getenv("FLEET_NS"), ID: id, Host: os.Getenv("FLEET_HOST"), Address: ln.Addr().String(),
		Version: "v1", LeaseTTL: testTTL, ProbeInterval: 200 * time.Millisecond, Logger: log,
	})
	if err != nil {
		return fail(err)
	}
	defer m.Close()
	if err := m.AwaitFresh(ctx); err != nil {
		return fail(err)
	}
	if err := m.SetState(ctx, fleet.StateReady); err != nil {
		return fail(err)
	}
	shared, err := m.Mirror(m.Layout().Namespace() + "/shared/")
	if err != nil {
		return fail(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(2)
	go func() { defer wg.Done(); reportShared(ctx, id, shared, out) }()
	go func() { defer wg.Done(); reportHealth(ctx, id, m, out) }()

	steps, _ := strconv.Atoi(os.Getenv("FLEET_STEPS"))
	pause, _ := time.ParseDuration(os.Getenv("FLEET_PAUSE"))
	var mu sync.Mutex
	var last *fleet.Lead
	drive, err := fleet.DriveRollout(fleet.RolloutOptions{Plan: func(l *fleet.Lead) (rollout.Plan, error) {
		mu.Lock()
		last = l
		mu.Unlock()
		out.printf("leading %s %d %d", id, l.Term(), time.Now().UnixNano())
		return progressPlan(l, steps, pause), nil
	}})
	if err != nil {
		return fail(err)
	}
	d, err := fleet.NewDriver(m, fleet.DriverOptions{Drive: drive})
	if err != nil {
		return fail(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); d.Run(ctx) }()

	out.printf("ready %s %s", id, ln.Addr())
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGCONT, syscall.SIGTERM)
	for s := range sig {
		if s == syscall.SIGTERM {
			lctx, lcancel := context.WithTimeout(context.Background(), time.Second)
			m.Leave(lctx)
			lcancel()
			return 0
		}
		// Woken after a SIGSTOP: write with the leadership held before it,
		// at once, before this process learns anything new.
		mu.Lock()
		l := last
		mu.Unlock()
		if l == nil {
			continue
		}
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := l.Commit(wctx, fleet.Op{Key: m.Layout().Namespace() + "/stale-write", Value: []byte(id), Prev: fleet.Any})
		wcancel()
		if err != nil {
			out.printf("stale-write %s refused %v", id, err)
		} else {
			out.printf("stale-write %s applied", id)
		}
	}
	return 0
}

// progressPlan is steps hooks, each writing shared/progress through the
// lead (fenced), with a pause after each.
func progressPlan(l *fleet.Lead, steps int, pause time.Duration) rollout.Plan {
	key := l.Member().Layout().Shared("progress")
	var ss []rollout.Step
	for i := 1; i <= steps; i++ {
		v := []byte(fmt.Sprintf("step-%d", i))
		ss = append(ss, rollout.Hook(func(ctx context.Context, ev rollout.HookEvent) error {
			_, err := l.Commit(ctx, fleet.Op{Key: key, Value: v, Prev: fleet.Any})
			return err
		}, rollout.HookOptions{}).Named(fmt.Sprintf("s%d", i)), rollout.Pause(pause).Named(fmt.Sprintf("p%d", i)))
	}
	return rollout.Plan{ID: "fleet-proc", Steps: ss}
}

func reportShared(ctx context.Context, id string, mi *fleet.Mirror, out *lineWriter) {
	seen := map[string]string{}
	for {
		ch := mi.Changed()
		docs, _ := mi.Snapshot()
		for _, d := range docs {
			if seen[d.Key] != string(d.Value) {
				seen[d.Key] = string(d.Value)
				out.printf("applied %s %s %s", id, d.Key, d.Value)
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

func reportHealth(ctx context.Context, id string, m *fleet.Member, out *lineWriter) {
	stale := false
	for {
		ch := m.HealthChanged()
		if s := m.Health().Stale(); s != stale {
			stale = s
			if s {
				out.printf("stale %s", id)
			} else {
				out.printf("fresh %s", id)
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// lineWriter writes whole lines to stdout, one writer at a time.
type lineWriter struct{ mu sync.Mutex }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return os.Stdout.Write(p)
}

func (w *lineWriter) printf(format string, args ...any) {
	fmt.Fprintf(w, format+"\n", args...)
}
