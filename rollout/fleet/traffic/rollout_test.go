//go:build unix

package traffic_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/internal/fleethost"
	"github.com/batonhq/baton/rollout/fleet/traffic"
)

// TestFleetCanaryRollout drives a fleet rollout's canary strategy
// (5% -> 25% -> 100%) with LeadWeights and the fleet-wide Analyzer, on
// three members with their own engine connections, each serving a canary
// that fails half of its requests: the analysis fails on the fleet's data,
// the rollout rolls back, the document and every host's splitter are back
// at 0, and the decision says it used the three hosts.
func TestFleetCanaryRollout(t *testing.T) {
	fleethost.Each(t, func(t *testing.T, b *fleethost.Backend) {
		ns := fleethost.Namespace()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		bad := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rand.IntN(2) == 0 {
				w.WriteHeader(http.StatusInternalServerError)
			}
		})
		var members []*fleet.Member
		var splitters []*canary.Splitter
		var wg sync.WaitGroup
		load, stopLoad := context.WithCancel(ctx)
		defer func() { stopLoad(); wg.Wait() }()
		for i := range 3 {
			m, err := fleethost.Join(ctx, b.Open(t), ns, fmt.Sprintf("host%d", i+1), "test", "")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			sp, err := canary.New(canary.Options{Stable: http.NotFoundHandler(), Canary: bad, Key: canary.KeyOptions{Header: "X-User"}, Resolution: time.Second, Window: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sp.Close() })
			f, err := traffic.Follow(m, traffic.FollowOptions{Splitter: sp})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			p, err := traffic.Publish(m, traffic.PublishOptions{Metrics: sp.Metrics(), Interval: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			members, splitters = append(members, m), append(splitters, sp)
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(time.Millisecond) // the load's pace
				defer tick.Stop()
				for n := 0; ; n++ {
					select {
					case <-load.Done():
						return
					case <-tick.C:
					}
					req := httptest.NewRequest(http.MethodGet, "/", nil)
					req.Header.Set("X-User", fmt.Sprintf("h%d-u%d", i, n))
					sp.ServeHTTP(httptest.NewRecorder(), req)
				}
			}()
		}
		testchild.Eventually(t, "every member listed", 10*time.Second, 20*time.Millisecond, func() error {
			if n := len(members[0].Members()); n != 3 {
				return fmt.Errorf("%d members", n)
			}
			return nil
		})
		// The latest Rollout the driver drives: a member that went stale
		// under load drives a new one from the stored state.
		var mu sync.Mutex
		var latest *rollout.Rollout
		started := make(chan struct{})
		current := func() *rollout.Rollout { mu.Lock(); defer mu.Unlock(); return latest }
		drive, err := fleet.DriveRollout(fleet.RolloutOptions{
			Plan: func(l *fleet.Lead) (rollout.Plan, error) {
				an, err := traffic.NewAnalyzer(l.Member(), traffic.AnalyzerOptions{Analysis: canary.AnalysisOptions{SkipLatency: true}, MaxAge: time.Second, MinHosts: 3})
				if err != nil {
					return rollout.Plan{}, err
				}
				steps, err := rollout.Canary(traffic.LeadWeights(l, traffic.WeightsOptions{}), rollout.CanaryOptions{
					Weights: []uint32{500, 2500, 10000}, Analyzer: an,
					Analysis: rollout.AnalysisOptions{Count: 20, Interval: 300 * time.Millisecond, MaxInconclusive: 20},
				})
				return rollout.Plan{ID: "fleet-canary", Steps: steps}, err
			},
			Started: func(r *rollout.Rollout) {
				mu.Lock()
				defer mu.Unlock()
				if latest == nil {
					close(started)
				}
				latest = r
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		d, err := fleet.NewDriver(members[0], fleet.DriverOptions{Drive: drive})
		if err != nil {
			t.Fatal(err)
		}
		dctx, dcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); d.Run(dctx) }()
		defer func() { dcancel(); <-done }()
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("the driver did not start the rollout")
		}
		testchild.Eventually(t, "the rollout to roll back", 45*time.Second, 20*time.Millisecond, func() error {
			if st := current().Status(); st.Phase != rollout.PhaseRolledBack {
				var last []string
				for _, s := range st.Steps {
					for _, d := range s.Decisions {
						last = append(last, s.Name+": "+d.Reason)
					}
				}
				return fmt.Errorf("phase %q; decisions %q", st.Phase, last)
			}
			return nil
		})
		var reason string
		st := current().Status()
		for _, s := range st.Steps {
			for _, dec := range s.Decisions {
				if strings.Contains(dec.Reason, "fleet analysis (3 hosts") {
					reason = dec.Reason
				}
			}
		}
		if reason == "" {
			t.Fatalf("no decision says it used the fleet's 3 hosts: %+v", st.Steps)
		}
		t.Logf("%s: %s", b.Name, reason)
		for i, sp := range splitters {
			testchild.Eventually(t, fmt.Sprintf("host%d back at weight 0", i+1), 10*time.Second, 10*time.Millisecond, func() error {
				if w := sp.Weight(); w != 0 {
					return fmt.Errorf("weight %d", w)
				}
				return nil
			})
		}
	})
}
