//go:build unix

package traffic_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/internal/fleethost"
	"github.com/batonhq/baton/rollout/fleet/traffic"
)

// fleetOf starts n traffic hosts and joins the test process to their
// fleet as member "test".
func fleetOf(t *testing.T, b *fleethost.Backend, n int, env ...string) (*fleet.Member, []*fleethost.Host, []string) {
	ns := fleethost.Namespace()
	env = append(append(slices.Clone(b.Env), "FLEET_NS="+ns), env...)
	var hosts []*fleethost.Host
	var addrs []string
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("host%d", i)
		h := fleethost.Start(t, "traffic-host", id, i, fleethost.Dir(t, id), env...)
		hosts = append(hosts, h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := fleethost.Join(ctx, b.Open(t), ns, "test", "test", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.AwaitFresh(ctx); err != nil {
		t.Fatal(err)
	}
	testchild.Eventually(t, "every host in the member list", 10*time.Second, 20*time.Millisecond, func() error {
		addrs = addrs[:0]
		for _, h := range hosts {
			found := false
			for _, mi := range m.Members() {
				if mi.ID == h.ID {
					found = true
					addrs = append(addrs, mi.Address)
				}
			}
			if !found {
				return fmt.Errorf("%s is not listed", h.ID)
			}
		}
		return nil
	})
	return m, hosts, addrs
}

func get(t *testing.T, c *http.Client, url, user string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-User", user)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// awaitApplied waits until every host printed that it applied revision
// rev, and returns when the last one did.
func awaitApplied(t *testing.T, hosts []*fleethost.Host, rev int64) time.Time {
	t.Helper()
	prefix := func(h *fleethost.Host) string { return fmt.Sprintf("applied %s %d ", h.ID, rev) }
	for _, h := range hosts {
		line := h.Lines.Await(t, "revision applied", 10*time.Second, func(l string) bool {
			return strings.HasPrefix(l, prefix(h)) || strings.HasPrefix(l, "applied "+h.ID+" ") && revOf(l) > rev
		})
		if r := strings.TrimSpace(strings.TrimPrefix(line, prefix(h))); strings.Contains(r, " ") {
			t.Fatalf("%s refused revision %d: %q", h.ID, rev, line)
		}
	}
	return time.Now()
}

func revOf(line string) int64 {
	var id string
	var rev int64
	fmt.Sscanf(line, "applied %s %d", &id, &rev)
	return rev
}

// TestProcessSticky runs three host processes; the test writes a series
// of weights (up to 100% and back down) to the fleet's canary document,
// and at every weight sends the same keys to every host: each key gets the
// same variant on every host, the one a splitter with the fleet's salt
// gives it, and a key in the canary at a weight stays in at every higher
// weight.
func TestProcessSticky(t *testing.T) {
	fleethost.Each(t, func(t *testing.T, b *fleethost.Backend) {
		m, hosts, addrs := fleetOf(t, b, 3, "CANARY_SALT=fleet-salt")
		w := traffic.MemberWeights(m, traffic.WeightsOptions{Salt: "fleet-salt", Target: "v2"})
		ref, err := canary.New(canary.Options{Stable: http.NotFoundHandler(), Canary: http.NotFoundHandler(), Salt: "fleet-salt", Key: canary.KeyOptions{Header: "X-User"}})
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Close()
		c := &http.Client{Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		keys := make([]string, 150)
		for i := range keys {
			keys[i] = fmt.Sprintf("user-%d", i)
		}
		inCanary := map[string]uint32{} // key -> lowest weight seen in the canary
		var lags []time.Duration
		for _, weight := range []uint32{0, 1, 100, 500, 2500, 5000, 7500, 10000, 2500, 500, 0} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			written := time.Now()
			rev, err := w.Put(ctx, traffic.Canary{Weight: weight, Salt: "fleet-salt", Target: "v2"})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			lags = append(lags, awaitApplied(t, hosts, rev).Sub(written))
			if err := ref.SetWeight(weight); err != nil {
				t.Fatal(err)
			}
			canaries := 0
			for _, k := range keys {
				req, _ := http.NewRequest(http.MethodGet, "/", nil)
				req.Header.Set("X-User", k)
				want := ref.Route(req).String()
				for i, a := range addrs {
					if _, got := get(t, c, "http://"+a+"/route", k); got != want {
						t.Fatalf("weight %d: key %s goes to %s on %s, %s by the fleet's salt", weight, k, got, hosts[i].ID, want)
					}
				}
				if want == "canary" {
					canaries++
					if low, ok := inCanary[k]; !ok || weight < low {
						inCanary[k] = weight
					}
				} else if low, ok := inCanary[k]; ok && weight > low {
					t.Fatalf("key %s was in the canary at weight %d but not at %d", k, low, weight)
				}
			}
			t.Logf("%s: weight %d: %d of %d keys in the canary on every host", b.Name, weight, canaries, len(keys))
		}
		t.Logf("%s: written to applied on every host (3 processes, the host's output included): max %s over %d changes", b.Name, slices.Max(lags).Round(time.Millisecond), len(lags))

		// A document with another salt is refused by every host, which
		// then sends nobody to its canary.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rev, err := w.Put(ctx, traffic.Canary{Weight: 5000, Salt: "other-salt", Target: "v2"})
		if err != nil {
			t.Fatal(err)
		}
		for i, h := range hosts {
			line := h.Lines.AwaitPrefix(t, fmt.Sprintf("applied %s %d 5000 ", h.ID, rev), 10*time.Second)
			if !strings.Contains(line, "salt") {
				t.Fatalf("%s: %q, want the salt refused", h.ID, line)
			}
			for _, k := range keys[:20] {
				if _, got := get(t, c, "http://"+addrs[i]+"/route", k); got != "stable" {
					t.Fatalf("%s sends %s to %s after refusing the document", h.ID, k, got)
				}
			}
		}
	})
}

// TestProcessFleetVerdict: three hosts serve a canary that fails half of
// its requests; the test's analyzer merges the hosts' published snapshots
// and fails the canary on the fleet's data, saying it used 3 hosts; when a
// host is killed, its samples age out and the decision uses 2.
func TestProcessFleetVerdict(t *testing.T) {
	fleethost.Each(t, func(t *testing.T, b *fleethost.Backend) {
		m, hosts, addrs := fleetOf(t, b, 3, "CANARY_ERRORS=0.5")
		w := traffic.MemberWeights(m, traffic.WeightsOptions{Target: "v2"})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		rev, err := w.Put(ctx, traffic.Canary{Weight: 5000, Target: "v2"})
		if err != nil {
			t.Fatal(err)
		}
		awaitApplied(t, hosts, rev)
		a, err := traffic.NewAnalyzer(m, traffic.AnalyzerOptions{Analysis: canary.AnalysisOptions{SkipLatency: true}, MaxAge: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		sent, user := 0, 0
		send := func(to []string) {
			for range 30 {
				for _, a := range to {
					user++
					if code, _ := get(t, c, "http://"+a+"/", fmt.Sprintf("u%d", user)); code != 200 && code != 500 {
						t.Fatalf("status %d", code)
					}
					sent++
				}
			}
		}
		decide := func(what string, want []string, to []string) traffic.Decision {
			var d traffic.Decision
			testchild.Eventually(t, what, 30*time.Second, 10*time.Millisecond, func() error {
				send(to)
				var err error
				if d, err = a.Decide(ctx); err != nil {
					return err
				}
				if !slices.Equal(d.Hosts, want) || d.Report.Verdict != canary.Fail {
					return fmt.Errorf("decision %s, hosts %v, left %v", d, d.Hosts, d.Left)
				}
				return nil
			})
			t.Logf("%s: %s, left out: %v", b.Name, d, d.Left)
			return d
		}
		d := decide("a fleet-wide fail on 3 hosts", []string{"host1", "host2", "host3"}, addrs)
		if d.Requests == 0 || d.Requests > uint64(sent) || d.Report.Canary.Errors == 0 {
			t.Fatalf("decision on %d requests (%d canary errors), %d sent", d.Requests, d.Report.Canary.Errors, sent)
		}
		hosts[2].Kill(t)
		decide("host3's samples to age out", []string{"host1", "host2"}, addrs[:2])
	})
}
