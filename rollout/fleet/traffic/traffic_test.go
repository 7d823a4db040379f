//go:build unix

package traffic_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/internal/fleethost"
	"github.com/batonhq/baton/rollout/fleet/traffic"
)

func joinT(t *testing.T, b *fleethost.Backend, ns, id string) *fleet.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := fleethost.Join(ctx, b.Open(t), ns, id, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.AwaitFresh(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

// awaitFollower waits for f to have applied a document at rev or later.
func awaitFollower(t *testing.T, f *traffic.Follower, rev int64) traffic.Applied {
	t.Helper()
	return awaitAppliedState(t, fmt.Sprintf("revision %d applied", rev), f, func(a traffic.Applied) bool { return a.Revision >= rev })
}

// TestFollowerTarget: a document naming another canary than the host's,
// or hashed with another salt, halts the host's canary; the right one
// puts its weight in force.
func TestFollowerTarget(t *testing.T) {
	fleethost.Each(t, func(t *testing.T, b *fleethost.Backend) {
		m := joinT(t, b, fleethost.Namespace(), "host1")
		sp, err := canary.New(canary.Options{Stable: http.NotFoundHandler(), Canary: http.NotFoundHandler()})
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		f, err := traffic.Follow(m, traffic.FollowOptions{Splitter: sp, Target: "v2"})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		w := traffic.MemberWeights(m, traffic.WeightsOptions{})
		ctx := context.Background()
		for _, c := range []struct {
			doc     traffic.Canary
			refused string
		}{
			{traffic.Canary{Weight: 5000, Target: "v3"}, `the fleet's canary is "v3", this host's is "v2"`},
			{traffic.Canary{Weight: 5000, Target: "v2", Salt: "other"}, `salt is "other"`},
			{traffic.Canary{Weight: 5000, Target: "v2"}, ""},
			{traffic.Canary{Weight: 2500}, ""}, // any target
		} {
			rev, err := w.Put(ctx, c.doc)
			if err != nil {
				t.Fatal(err)
			}
			a := awaitFollower(t, f, rev)
			switch {
			case c.refused != "" && (!strings.Contains(a.Refused, c.refused) || !sp.Halted()):
				t.Fatalf("%+v: applied %+v, halted %v; want refused with %q", c.doc, a, sp.Halted(), c.refused)
			case c.refused == "" && (a.Refused != "" || sp.Halted() || sp.Weight() != c.doc.Weight):
				t.Fatalf("%+v: applied %+v, halted %v, weight %d", c.doc, a, sp.Halted(), sp.Weight())
			}
		}
		if _, err := w.Put(ctx, traffic.Canary{Weight: canary.MaxWeight + 1}); err == nil {
			t.Fatal("a weight above 100% was written")
		}
	})
}

// TestDecideLeavesOut: the Analyzer merges only live members' snapshots
// taken within MaxAge at the fleet's weight, and says why it left the
// others out.
func TestDecideLeavesOut(t *testing.T) {
	fleethost.Each(t, func(t *testing.T, b *fleethost.Backend) {
		ns := fleethost.Namespace()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		driver := joinT(t, b, ns, "driver")
		for i, weight := range []uint32{500, 2500} {
			m := joinT(t, b, ns, fmt.Sprintf("host%d", i+1))
			ms := canary.NewMetrics(canary.MetricsOptions{Weight: weight})
			for range 50 {
				ms.Record(canary.Stable, time.Millisecond, false)
				ms.Record(canary.Canary, time.Millisecond, false)
			}
			p, err := traffic.Publish(m, traffic.PublishOptions{Metrics: ms, Interval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if err := p.PublishNow(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// A snapshot left by a member that is gone.
		ghost, _ := json.Marshal(canary.NewMetrics(canary.MetricsOptions{Weight: 500}).Snapshot())
		if _, err := driver.Engine().Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: traffic.MetricsKey(driver.Layout(), "ghost", ""), Value: ghost}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := traffic.MemberWeights(driver, traffic.WeightsOptions{}).Put(ctx, traffic.Canary{Weight: 500}); err != nil {
			t.Fatal(err)
		}
		waitMembers(t, driver, 3)
		a, err := traffic.NewAnalyzer(driver, traffic.AnalyzerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d, err := a.Decide(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(d.Hosts, []string{"host1"}) || len(d.Left) != 2 ||
			!strings.HasPrefix(d.Left[0], "ghost: not a live member") || !strings.HasPrefix(d.Left[1], "host2: at weight 2500, the fleet's is 500") {
			t.Fatalf("decision %s: hosts %v, left %q", d, d.Hosts, d.Left)
		}
		two, err := traffic.NewAnalyzer(driver, traffic.AnalyzerOptions{MinHosts: 2})
		if err != nil {
			t.Fatal(err)
		}
		if d, err := two.Decide(ctx); err != nil || d.Report.Verdict != canary.Inconclusive || !slices.Equal(d.Hosts, []string{"host1"}) ||
			!strings.HasPrefix(d.Report.Reason, "1 of the 2 hosts needed") || !strings.Contains(d.Report.Reason, "host2: at weight 2500") {
			t.Fatalf("MinHosts 2 on one host: %s, %v", d, err)
		}
		if _, err := traffic.NewAnalyzer(driver, traffic.AnalyzerOptions{MinHosts: -1}); err == nil || !strings.Contains(err.Error(), "MinHosts -1") {
			t.Fatalf("MinHosts -1: %v", err)
		}
		later, err := traffic.NewAnalyzer(driver, traffic.AnalyzerOptions{Now: func() time.Time { return time.Now().Add(time.Minute) }})
		if err != nil {
			t.Fatal(err)
		}
		if d, err = later.Decide(ctx); err != nil || len(d.Hosts) != 0 || d.Report.Verdict != canary.Inconclusive || !strings.Contains(d.Report.Reason, "host1: snapshot 1m") {
			t.Fatalf("a minute later: %s, %v", d, err)
		}
	})
}

func waitMembers(t *testing.T, m *fleet.Member, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := m.MembersChanged()
		if len(m.Members()) == n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%d members, want %d", len(m.Members()), n)
		}
	}
}
