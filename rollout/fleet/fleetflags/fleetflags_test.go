//go:build unix

package fleetflags_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/fleetflags"
	"github.com/batonhq/baton/rollout/fleet/internal/fleethost"
)

const twoFlags = `flags:
  a:
    variants: {on: true, off: false}
    default: off
  b:
    variants: {on: true, off: false}
    default: off
`

type member struct {
	m     *fleet.Member
	store *flags.Store
	src   *fleetflags.Source
}

// members joins n members, each on its own engine connection with a
// Store following the fleet's document.
func members(t *testing.T, b *fleethost.Backend, n int) []member {
	ns := fleethost.Namespace()
	var out []member
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		m, err := fleethost.Join(ctx, b.Open(t), ns, fmt.Sprintf("host%d", i+1), "test", "")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		store, err := flags.New(flags.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		src, err := fleetflags.NewSource(fleetflags.Options{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { src.Close() })
		if err := src.Follow(m); err != nil {
			t.Fatal(err)
		}
		out = append(out, member{m, store, src})
	}
	return out
}

func percentOf(s *flags.Store, key string) string {
	st := s.Status(key)
	if st.Percent == nil {
		return "none"
	}
	return fmt.Sprint(*st.Percent)
}

// TestNoDocument: with no document stored, a host that reached the engine
// is not stale; an admin change has nothing to edit and says so.
func TestNoDocument(t *testing.T) {
	fleethost.Each(t, func(t *testing.T, b *fleethost.Backend) {
		ms := members(t, b, 1)
		testchild.Eventually(t, "the source to be fresh", 10*time.Second, 10*time.Millisecond, func() error {
			if st := ms[0].store.StaleSources(); len(st) != 0 {
				return fmt.Errorf("stale: %v", st)
			}
			return nil
		})
		err := ms[0].src.Writer().UpdateOverride(context.Background(), "a", func(o *flags.Override) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "no flag document") {
			t.Fatalf("change without a document: %v", err)
		}
	})
}

// TestConcurrentChanges: two hosts change two flags of one document at
// the same time, many times; compare-and-swap keeps every change, and
// every host ends on the same version.
func TestConcurrentChanges(t *testing.T) {
	fleethost.Each(t, func(t *testing.T, b *fleethost.Backend) {
		ms := members(t, b, 3)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if _, err := ms[0].src.Writer().Put(ctx, []byte(twoFlags), 0); err != nil {
			t.Fatal(err)
		}
		const rounds = 8
		var wg sync.WaitGroup
		errs := make(chan error, 2*rounds)
		for i, key := range []string{"a", "b"} {
			w := ms[i].src.Writer()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 1; r <= rounds; r++ {
					p := float64(r * 10)
					errs <- w.UpdateOverride(ctx, key, func(o *flags.Override) error {
						o.Percent = &flags.Percent{Variant: "on", Percent: p}
						return nil
					})
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		_, rev, err := ms[0].src.Writer().Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprint(float64(rounds * 10))
		for _, m := range ms {
			testchild.Eventually(t, m.m.ID()+" on the last version", 10*time.Second, 10*time.Millisecond, func() error {
				if v := m.src.Current().Version; v != uint64(rev) {
					return fmt.Errorf("version %d, want %d", v, rev)
				}
				if a, b := percentOf(m.store, "a"), percentOf(m.store, "b"); a != want || b != want {
					return fmt.Errorf("a at %s, b at %s", a, b)
				}
				return nil
			})
		}
	})
}

// TestRampFromDriver: a fleet rollout's ramp-flag step writes each
// percentage through a LeadWriter, and every host serves it.
func TestRampFromDriver(t *testing.T) {
	fleethost.Each(t, func(t *testing.T, b *fleethost.Backend) {
		ms := members(t, b, 3)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if _, err := fleetflags.NewWriter(ms[1].m, "").Put(ctx, []byte(twoFlags), 0); err != nil {
			t.Fatal(err)
		}
		drive, err := fleet.DriveRollout(fleet.RolloutOptions{Plan: func(l *fleet.Lead) (rollout.Plan, error) {
			ramps := fleetflags.Ramps{Writer: fleetflags.LeadWriter(l, "")}
			return rollout.Plan{ID: "ramp", Steps: []rollout.Step{
				rollout.RampFlag(ramps, "a", rollout.RampOptions{Percentages: []float64{10, 50, 100}, Interval: 50 * time.Millisecond}),
			}}, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		d, err := fleet.NewDriver(ms[0].m, fleet.DriverOptions{Drive: drive})
		if err != nil {
			t.Fatal(err)
		}
		dctx, dcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); d.Run(dctx) }()
		defer func() { dcancel(); <-done }()
		for _, m := range ms {
			testchild.Eventually(t, m.m.ID()+" serving flag a at 100%", 30*time.Second, 10*time.Millisecond, func() error {
				if p := percentOf(m.store, "a"); p != "100" {
					return fmt.Errorf("at %s", p)
				}
				if v := m.store.Bool("a", flags.EvalContext{TargetingKey: "anyone"}, false); !v {
					return fmt.Errorf("serves %v", v)
				}
				return nil
			})
		}
	})
}
