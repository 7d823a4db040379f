//go:build unix

package traffic_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/internal/fleethost"
	"github.com/batonhq/baton/rollout/fleet/traffic"
)

// syncBuffer is a bytes.Buffer a logger writes to from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// awaitAppliedState waits until f's Applied satisfies ok.
func awaitAppliedState(t *testing.T, what string, f *traffic.Follower, ok func(traffic.Applied) bool) traffic.Applied {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ch := f.Changed()
		if a := f.Applied(); ok(a) {
			return a
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: applied %+v", what, f.Applied())
		}
	}
}

// TestFollowerCache: a host that follows with a CacheFile and restarts
// while the engine is down serves the fleet's last weight from the cache
// (FromCache, Stale) before the engine answers, then catches up with what
// was written meanwhile; a damaged cache, or one holding another
// document, is logged and not used.
func TestFollowerCache(t *testing.T) {
	fleethost.Each(t, func(t *testing.T, b *fleethost.Backend) {
		ns := fleethost.Namespace()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		driver := joinT(t, b, ns, "driver")
		outEnv, cut, restore, writesDuring := b.Outage(t)
		hb := *b
		hb.Env = append(slices.Clone(b.Env), outEnv...)
		hostEngine := hb.Open(t) // the host's own connection, the one the outage cuts
		cache := filepath.Join(t.TempDir(), "canary.cache")
		newSplitter := func() *canary.Splitter {
			sp, err := canary.New(canary.Options{Stable: http.NotFoundHandler(), Canary: http.NotFoundHandler()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sp.Close() })
			return sp
		}
		join := func() *fleet.Member {
			m, err := fleethost.Join(ctx, hostEngine, ns, "host1", "test", "")
			if err != nil {
				t.Fatal(err)
			}
			return m
		}

		m1, sp1 := join(), newSplitter()
		f1, err := traffic.Follow(m1, traffic.FollowOptions{Splitter: sp1, CacheFile: cache})
		if err != nil {
			t.Fatal(err)
		}
		w := traffic.MemberWeights(driver, traffic.WeightsOptions{})
		rev, err := w.Put(ctx, traffic.Canary{Weight: 2500})
		if err != nil {
			t.Fatal(err)
		}
		awaitFollower(t, f1, rev)
		if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("cache after revision %d: %v %v", rev, fi, err)
		}
		f1.Close()
		m1.Close()

		cut()
		m2, sp2 := join(), newSplitter()
		defer m2.Close()
		f2, err := traffic.Follow(m2, traffic.FollowOptions{Splitter: sp2, CacheFile: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer f2.Close()
		if a := f2.Applied(); sp2.Weight() != 2500 || !a.FromCache || !a.Stale || a.Revision != rev {
			t.Fatalf("restarted with the engine down: weight %d, applied %+v; want 2500 from the cache at revision %d", sp2.Weight(), a, rev)
		}
		want, wantRev := uint32(2500), rev
		if writesDuring { // PostgreSQL: the driver's own connection still writes
			want = 5000
			if wantRev, err = w.Put(ctx, traffic.Canary{Weight: want}); err != nil {
				t.Fatal(err)
			}
		}
		restore()
		a := awaitAppliedState(t, "caught up after the outage", f2, func(a traffic.Applied) bool {
			return !a.FromCache && !a.Stale && a.Revision == wantRev
		})
		if sp2.Weight() != want || a.Canary.Weight != want {
			t.Fatalf("after the outage: weight %d, applied %+v; want %d", sp2.Weight(), a, want)
		}
		t.Logf("%s: restarted host served 2500 from the cache, then revision %d (%d) from the engine", b.Name, wantRev, want)

		// Damaged, and another document's: logged, not used.
		var logs syncBuffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		other, err := traffic.Follow(m2, traffic.FollowOptions{Name: "other", Splitter: newSplitter(), CacheFile: cache, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if a := other.Applied(); a.FromCache || a.Revision != 0 {
			t.Errorf("another document's cache was used: %+v", a)
		}
		other.Close()
		bad := filepath.Join(t.TempDir(), "bad.cache")
		if err := os.WriteFile(bad, []byte(`{"key": "`), 0o600); err != nil {
			t.Fatal(err)
		}
		sp3 := newSplitter()
		damaged, err := traffic.Follow(m2, traffic.FollowOptions{Splitter: sp3, CacheFile: bad, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if a := damaged.Applied(); a.FromCache {
			t.Errorf("a damaged cache was used: %+v", a)
		}
		damaged.Close()
		for _, wantLog := range []string{"holds the document", bad} {
			if !strings.Contains(logs.String(), wantLog) {
				t.Errorf("log does not say %q:\n%s", wantLog, logs.String())
			}
		}
	})
}
