package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
)

// benchBackends runs f on embedded etcd and, with BATON_TEST_POSTGRES_DSN,
// PostgreSQL.
func benchBackends(b *testing.B, f func(b *testing.B, be *backend)) {
	b.Run("etcd", func(b *testing.B) { f(b, etcdBackendB(b)) })
	b.Run("postgres", func(b *testing.B) { f(b, pgBackendB(b)) })
}

// stateDoc is the size of a small rollout's state.
var stateDoc = []byte(`{"id":"bench","phase":"running","planHash":"0123456789abcdef","run":1,"current":2,"steps":[` +
	`{"name":"weight-10","kind":"set-weight","status":"succeeded"},{"name":"pause","kind":"pause","status":"succeeded"},` +
	`{"name":"weight-50","kind":"set-weight","status":"running","attempts":1}]}`)

func benchSaves(b *testing.B, s rollout.Store) {
	ctx := context.Background()
	id := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	rev, err := s.Save(ctx, id, 0, stateDoc)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if rev, err = s.Save(ctx, id, rev, stateDoc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSave compares one rollout transition (a Save) in the file store
// with a fenced Save on each engine.
func BenchmarkSave(b *testing.B) {
	b.Run("filestore", func(b *testing.B) {
		s, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		benchSaves(b, s)
	})
	benchBackends(b, func(b *testing.B, be *backend) {
		m := join(b, be.open(b, be.addr), namespace(b), "bench", "v1")
		leads := make(chan *fleet.Lead, 1)
		d, err := fleet.NewDriver(m, fleet.DriverOptions{Drive: func(ctx context.Context, l *fleet.Lead) error {
			leads <- l
			<-ctx.Done()
			return nil
		}})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); d.Run(ctx) }()
		defer func() { cancel(); <-done }()
		select {
		case l := <-leads:
			benchSaves(b, l.Store())
		case <-time.After(10 * time.Second):
			b.Fatal("no leadership within 10 s")
		}
	})
}

// BenchmarkPropagation writes a shared document and waits until three
// members, each on its own engine connection, have it in their Mirror:
// the time from the write to the last member seeing it (p50 and p99 as
// metrics).
func BenchmarkPropagation(b *testing.B) {
	benchBackends(b, func(b *testing.B, be *backend) {
		ns := namespace(b)
		key := fleet.NewLayout(ns).Shared("weight")
		var mirrors []*fleet.Mirror
		for i := range 3 {
			m := join(b, be.open(b, be.addr), ns, fmt.Sprintf("m%d", i), "v1")
			mi, err := m.Mirror(key)
			if err != nil {
				b.Fatal(err)
			}
			mirrors = append(mirrors, mi)
		}
		w := be.open(b, be.addr)
		ctx := context.Background()
		var lat []time.Duration
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			v := []byte(fmt.Sprint(i))
			chs := make([]<-chan struct{}, len(mirrors))
			for j, mi := range mirrors {
				chs[j] = mi.Changed()
			}
			start := time.Now()
			if _, err := w.Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: key, Value: v, Prev: fleet.Any}}}); err != nil {
				b.Fatal(err)
			}
			for j, mi := range mirrors {
				for {
					if d, ok := mi.Get(key); ok && string(d.Value) == string(v) {
						break
					}
					select {
					case <-chs[j]:
						chs[j] = mi.Changed()
					case <-time.After(10 * time.Second):
						b.Fatalf("member %d did not see write %d within 10 s", j, i)
					}
				}
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
	})
}

// BenchmarkDesiredApplied writes the desired state of three hosts, each an
// Agent on its own engine connection, through a leader's fenced writes,
// and waits until every host's Observed answers it, as the leader's health
// gate sees it (a Mirror of the observed states): the fleet's control path
// from a decision to every host acting on it, p50 and p99 as metrics. The
// version asked for is the one the hosts run, so no upgrade is timed (an
// upgrade's own handoff is measured in graceful's figures).
func BenchmarkDesiredApplied(b *testing.B) {
	benchBackends(b, func(b *testing.B, be *backend) {
		ns := namespace(b)
		keys := fleet.NewLayout(ns)
		ctx, cancel := context.WithCancel(context.Background())
		var done []chan struct{}
		defer func() {
			cancel()
			for _, d := range done {
				<-d
			}
		}()
		hosts := []string{"h1", "h2", "h3"}
		for _, id := range hosts {
			m := join(b, be.open(b, be.addr), ns, id, "v1")
			a, err := fleet.NewAgent(m, fleet.AgentOptions{Upgrader: refusingUpgrader{}, Binaries: anyBinary{}})
			if err != nil {
				b.Fatal(err)
			}
			d := make(chan struct{})
			done = append(done, d)
			go func() { defer close(d); a.Run(ctx) }()
		}
		lm := join(b, be.open(b, be.addr), ns, "driver", "driver")
		obs, err := lm.Mirror(keys.Observed(""))
		if err != nil {
			b.Fatal(err)
		}
		leads := make(chan *fleet.Lead, 1)
		d, err := fleet.NewDriver(lm, fleet.DriverOptions{Drive: func(ctx context.Context, l *fleet.Lead) error {
			leads <- l
			<-ctx.Done()
			return nil
		}})
		if err != nil {
			b.Fatal(err)
		}
		dd := make(chan struct{})
		done = append(done, dd)
		go func() { defer close(dd); d.Run(ctx) }()
		var l *fleet.Lead
		select {
		case l = <-leads:
		case <-time.After(10 * time.Second):
			b.Fatal("no leadership within 10 s")
		}
		var lat []time.Duration
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			start := time.Now()
			revs := map[string]int64{}
			for _, h := range hosts {
				rev, err := l.SetDesired(ctx, h, fleet.Desired{Version: "v1", Rollout: fmt.Sprintf("r%d", i)})
				if err != nil {
					b.Fatal(err)
				}
				revs[h] = rev
			}
			deadline := time.After(10 * time.Second)
			for {
				ch := obs.Changed()
				n := 0
				for _, h := range hosts {
					if doc, ok := obs.Get(keys.Observed(h)); ok {
						var o fleet.Observed
						if json.Unmarshal(doc.Value, &o) == nil && o.Desired >= revs[h] {
							n++
						}
					}
				}
				if n == len(hosts) {
					break
				}
				select {
				case <-ch:
				case <-deadline:
					b.Fatalf("write %d: %d of %d hosts answered within 10 s", i, n, len(hosts))
				}
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
	})
}
