// Command fleetprop measures how long a change of a fleet's shared state
// takes to be served by every host: from the moment a canary weight
// (traffic.Weights) or a flag document (fleetflags.Writer) is written to
// the moment the last of -hosts members has applied it (its splitter
// routes at the new weight; its flags.Store serves the new version). Each
// member has its own engine connection, as a host of its own would; they
// run in this process so that one clock times them.
//
//	go run ./internal/cmd/fleetprop -changes 100
//	BATON_TEST_POSTGRES_DSN=postgres://... go run ./internal/cmd/fleetprop -engine postgres
//
// It prints "propagation p99: <duration>" with p50 and max, over -changes
// changes, half weights and half flag documents, and exits non-zero if a
// change did not reach every host within 10 s.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/etcd"
	"github.com/batonhq/baton/rollout/fleet/etcd/etcdtest"
	"github.com/batonhq/baton/rollout/fleet/fleetflags"
	"github.com/batonhq/baton/rollout/fleet/postgres"
	"github.com/batonhq/baton/rollout/fleet/traffic"
)

func main() {
	engine := flag.String("engine", "etcd", "etcd (embedded server) or postgres (BATON_TEST_POSTGRES_DSN)")
	hosts := flag.Int("hosts", 3, "members, each on its own engine connection")
	changes := flag.Int("changes", 100, "changes to time (half weights, half flag documents)")
	flag.Parse()
	if err := run(*engine, *hosts, *changes); err != nil {
		fmt.Fprintln(os.Stderr, "fleetprop:", err)
		os.Exit(1)
	}
}

// host is one member with what it applies.
type host struct {
	m     *fleet.Member
	sp    *canary.Splitter
	f     *traffic.Follower
	store *flags.Store
	src   *fleetflags.Source

	mu      sync.Mutex
	applied map[int64]time.Time // revision -> when this host served it
	changed chan struct{}
}

func (h *host) note(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.applied[rev]; !ok {
		h.applied[rev] = time.Now()
		close(h.changed)
		h.changed = make(chan struct{})
	}
}

// await returns when h served rev (or a later revision: changes may be
// coalesced by a watch).
func (h *host) await(ctx context.Context, rev int64) (time.Time, error) {
	for {
		h.mu.Lock()
		var at time.Time
		for r, t := range h.applied {
			if r >= rev && (at.IsZero() || t.Before(at)) {
				at = t
			}
		}
		ch := h.changed
		h.mu.Unlock()
		if !at.IsZero() {
			return at, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("member %s did not serve revision %d: %w", h.m.ID(), rev, ctx.Err())
		}
	}
}

func run(engine string, n, changes int) error {
	open, closeAll, err := opener(engine)
	if err != nil {
		return err
	}
	defer closeAll()
	ctx := context.Background()
	ns := fmt.Sprintf("fleetprop_%x", time.Now().UnixNano())
	var hs []*host
	defer func() {
		for _, h := range hs {
			h.f.Close()
			h.src.Close()
			h.sp.Close()
			h.store.Close()
			h.m.Close()
		}
	}()
	for i := range n {
		e, err := open()
		if err != nil {
			return err
		}
		m, err := fleet.Join(ctx, e, fleet.Options{Namespace: ns, ID: fmt.Sprintf("host%d", i+1), Version: "v1"})
		if err != nil {
			return err
		}
		if err := m.AwaitFresh(ctx); err != nil {
			return err
		}
		h := &host{m: m, applied: map[int64]time.Time{}, changed: make(chan struct{})}
		if h.sp, err = canary.New(canary.Options{Stable: http.NotFoundHandler(), Canary: http.NotFoundHandler()}); err != nil {
			return err
		}
		if h.store, err = flags.New(flags.Options{}); err != nil {
			return err
		}
		if h.src, err = fleetflags.NewSource(fleetflags.Options{Store: h.store, OnApply: func(d flags.Document, err error) {
			if err == nil {
				h.note(int64(d.Version))
			}
		}}); err != nil {
			return err
		}
		if err := h.src.Follow(m); err != nil {
			return err
		}
		if h.f, err = traffic.Follow(m, traffic.FollowOptions{Splitter: h.sp, OnApply: func(a traffic.Applied) {
			if a.Refused == "" {
				h.note(a.Revision)
			}
		}}); err != nil {
			return err
		}
		hs = append(hs, h)
	}
	w := traffic.MemberWeights(hs[0].m, traffic.WeightsOptions{})
	fw := fleetflags.NewWriter(hs[0].m, "")
	var lags []time.Duration
	for i := range changes {
		start := time.Now()
		var rev int64
		if i%2 == 0 {
			rev, err = w.Put(ctx, traffic.Canary{Weight: uint32(i*97) % canary.MaxWeight})
		} else {
			doc := fmt.Sprintf("flags:\n  f:\n    variants: {on: true, off: false}\n    default: off\n    serve: {rollout: [{variant: on, weight: %d}, {variant: off, weight: %d}]}\n", i%100, 100-i%100)
			rev, err = fw.Put(ctx, []byte(doc), fleet.Any)
		}
		if err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var last time.Time
		for _, h := range hs {
			at, err := h.await(actx, rev)
			if err != nil {
				cancel()
				return err
			}
			if at.After(last) {
				last = at
			}
		}
		cancel()
		lags = append(lags, last.Sub(start))
		if os.Getenv("FLEETPROP_DEBUG") != "" {
			fmt.Println(i%2, last.Sub(start))
		}
	}
	slices.Sort(lags)
	q := func(p float64) time.Duration {
		return lags[int(float64(len(lags)-1)*p+0.5)].Round(10 * time.Microsecond)
	}
	fmt.Printf("engine %s, %d hosts, %d changes (weights and flag documents alternately)\n", engine, n, changes)
	fmt.Printf("propagation p50: %s\n", q(0.5))
	fmt.Printf("propagation p99: %s\n", q(0.99))
	fmt.Printf("propagation max: %s\n", lags[len(lags)-1].Round(10*time.Microsecond))
	return nil
}

// opener returns a function that opens a new connection to the engine.
func opener(engine string) (func() (fleet.Engine, error), func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	switch engine {
	case "etcd":
		srv, err := etcdtest.Start(etcdtest.Options{})
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, srv.Close)
		return func() (fleet.Engine, error) {
			e, err := etcd.Open(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
			if err == nil {
				closers = append(closers, func() { e.Close() })
			}
			return e, err
		}, closeAll, nil
	case "postgres":
		dsn := os.Getenv("BATON_TEST_POSTGRES_DSN")
		if dsn == "" {
			return nil, nil, fmt.Errorf("-engine postgres needs BATON_TEST_POSTGRES_DSN")
		}
		schema := fmt.Sprintf("fleetprop_%d", time.Now().UnixNano()%1e12)
		closers = append(closers, func() {
			if db, err := sql.Open("pgx", dsn); err == nil {
				db.Exec(`DROP SCHEMA IF EXISTS "` + schema + `" CASCADE`)
				db.Close()
			}
		})
		return func() (fleet.Engine, error) {
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				return nil, err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			e, err := postgres.New(ctx, db, postgres.Options{Schema: schema})
			if err != nil {
				db.Close()
				return nil, err
			}
			closers = append(closers, func() { e.Close(); db.Close() })
			return e, nil
		}, closeAll, nil
	}
	return nil, nil, fmt.Errorf("-engine %q: want etcd or postgres", engine)
}
