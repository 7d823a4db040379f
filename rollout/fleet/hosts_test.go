package fleet_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/fleetflags"
	"github.com/batonhq/baton/rollout/fleet/traffic"
)

// The console's fleet page lists every live member, this one marked.
func TestRegistryHostsForTheConsole(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ns := namespace(t)
		a := join(t, b.open(t, b.addr), ns, "a", "v1")
		bm := join(t, b.open(t, b.addr), ns, "b", "v2")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := bm.SetState(ctx, fleet.StateReady); err != nil {
			t.Fatal(err)
		}
		hosts, err := a.Registry().Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts) != 2 || hosts[0].Name != "a on test" || !hosts[0].Self || hosts[0].Version != "v1" ||
			hosts[1].Self || hosts[1].Version != "v2" || hosts[1].State != fleet.StateReady || hosts[1].SeenAt.IsZero() {
			t.Fatalf("hosts %+v", hosts)
		}
	})
}

// hostApplier is what one host applies of the fleet's shared documents:
// a splitter following the canary document and a flag store following
// the flag document.
type hostApplier struct {
	sp  *canary.Splitter
	f   *traffic.Follower
	src *fleetflags.Source
}

func applyOnHost(t *testing.T, m *fleet.Member) *hostApplier {
	t.Helper()
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	sp, err := canary.New(canary.Options{Stable: ok, Canary: ok})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	f, err := traffic.Follow(m, traffic.FollowOptions{Splitter: sp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
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
	return &hostApplier{sp: sp, f: f, src: src}
}

// hostColumns is what the fleet page shows of a host's weight and flag
// version.
func hostColumns(h rollout.Host) string {
	w := "none"
	if h.Weight != nil {
		w = strconv.FormatUint(uint64(*h.Weight), 10)
	}
	return "weight " + w + ", flags " + h.FlagVersion
}

// The fleet page shows the canary weight and the flag version each host
// has applied: after a change, the new values of the hosts that applied
// it, the old ones of a host that has not.
func TestRegistryHostsShowWhatEachHostApplied(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ns := namespace(t)
		a := join(t, b.open(t, b.addr), ns, "a", "v1")
		bm := join(t, b.open(t, b.addr), ns, "b", "v1")
		onA, onB := applyOnHost(t, a), applyOnHost(t, bm)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		weights := traffic.MemberWeights(a, traffic.WeightsOptions{})
		flagDocs := fleetflags.NewWriter(a, "")
		columns := func() ([]string, error) {
			hosts, err := a.Registry().Hosts(ctx)
			if err != nil {
				return nil, err
			}
			var out []string
			for _, h := range hosts {
				out = append(out, hostColumns(h))
			}
			return out, nil
		}
		await := func(want ...string) {
			t.Helper()
			testchild.Eventually(t, "the fleet page to show "+strings.Join(want, "; "), 10*time.Second, 20*time.Millisecond, func() error {
				got, err := columns()
				if err != nil {
					return err
				}
				if !slices.Equal(got, want) {
					return fmt.Errorf("hosts show %q", got)
				}
				return nil
			})
		}

		if _, err := weights.Put(ctx, traffic.Canary{Weight: 100}); err != nil {
			t.Fatal(err)
		}
		v1, err := flagDocs.Put(ctx, []byte("flags:\n  f:\n    variants: {on: true, off: false}\n    default: off\n"), 0)
		if err != nil {
			t.Fatal(err)
		}
		old := fmt.Sprintf("weight 100, flags %d", v1)
		await(old, old)

		// b stops applying: it keeps what it has in force, and reports it.
		if err := onB.f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := onB.src.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := weights.Put(ctx, traffic.Canary{Weight: 2500}); err != nil {
			t.Fatal(err)
		}
		v2, err := flagDocs.Put(ctx, []byte("flags:\n  f:\n    variants: {on: true, off: false}\n    default: on\n"), v1)
		if err != nil {
			t.Fatal(err)
		}
		await(fmt.Sprintf("weight 2500, flags %d", v2), old)
		if w, v := onA.sp.Weight(), onA.src.Current().Version; w != 2500 || v != uint64(v2) {
			t.Fatalf("a applied weight %d and flags %d", w, v)
		}
		if w, v := onB.sp.Weight(), onB.src.Current().Version; w != 100 || v != uint64(v1) {
			t.Fatalf("b applied weight %d and flags %d", w, v)
		}

		// A document a's splitter cannot serve as written: a halts its
		// canary, and the page says why.
		rev, err := weights.Put(ctx, traffic.Canary{Weight: 5000, Salt: "another-salt"})
		if err != nil {
			t.Fatal(err)
		}
		testchild.Eventually(t, "a's refusal on the fleet page", 10*time.Second, 20*time.Millisecond, func() error {
			hosts, err := a.Registry().Hosts(ctx)
			if err != nil {
				return err
			}
			for _, h := range hosts {
				if strings.HasPrefix(h.Name, "a ") {
					if want := fmt.Sprintf("revision %d not applied: the fleet's salt is %q", rev, "another-salt"); !strings.Contains(h.State, want) {
						return fmt.Errorf("a's state %q lacks %q", h.State, want)
					}
					return nil
				}
			}
			return fmt.Errorf("a not listed: %+v", hosts)
		})
	})
}
