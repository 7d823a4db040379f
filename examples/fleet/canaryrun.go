//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet/fleetflags"
	"github.com/batonhq/baton/rollout/fleet/traffic"
)

// canaryResult is what the fleet canary phase reports.
type canaryResult struct {
	status   rollout.Status
	lines    []string // the report's lines
	ok       int64
	failed   int64
	changed  int // sticky keys that changed variant
	stickyOf int
}

// stickyKeys is how many keys are sent to every host during the canary.
const stickyKeys = 100

// canaryPhase runs the fleet canary (release kind "canary", driven by
// whichever host leads) under keyed load, checks that every key gets the
// same variant on every host, then times 60 changes of the shared weight
// and flag document from the write to every host serving them.
func (x *example) canaryPhase() (canaryResult, error) {
	var res canaryResult
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	fw := fleetflags.EngineWriter(x.e, x.keys, "")
	if _, err := fw.Put(ctx, []byte(flagDoc), 0); err != nil {
		return res, err
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	addrs, err := x.hostAddrs(ctx)
	if err != nil {
		return res, err
	}
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / 75) // 4 clients at 75/s: 300 requests/s
			defer tick.Stop()
			for n := c; ; n += 4 {
				select {
				case <-lctx.Done():
					return
				case <-tick.C:
				}
				if _, err := x.checkout(lctx, client, addrs[n%len(addrs)], fmt.Sprintf("user-%d", n%5000)); err == nil {
					ok.Add(1)
				} else if lctx.Err() == nil {
					failed.Add(1)
				}
			}
		}()
	}
	st := &sticky{low: map[string]uint32{}, seen: map[string]bool{}}
	wg.Add(1)
	go func() { defer wg.Done(); x.checkSticky(lctx, client, addrs, st) }()

	rel := release{ID: "release-checkout", Kind: "canary", Version: "v2", Previous: "v2"}
	if err := x.put(rel); err != nil {
		stopLoad()
		wg.Wait()
		return res, err
	}
	x.logf("release-checkout asked for: a fleet canary 5%% -> 25%% -> 100%% judged on every host's traffic, then a ramp of %s", flagKey)
	res.status, err = x.awaitPhase(rel.ID, 120*time.Second, rollout.PhaseSucceeded)
	stopLoad()
	wg.Wait()
	if err != nil {
		return res, err
	}
	res.ok, res.failed = ok.Load(), failed.Load()
	st.mu.Lock()
	res.changed, res.stickyOf = len(st.changed), len(st.seen)
	st.mu.Unlock()
	x.logf("release-checkout succeeded: %d checkout requests answered, %d failed; %d sticky rounds compared", res.ok, res.failed, st.rounds.Load())

	lags, err := x.propagation(ctx, client, addrs, fw, 60)
	if err != nil {
		return res, err
	}
	for _, s := range res.status.Steps {
		for _, d := range s.Decisions {
			if m := analysisLine.FindStringSubmatch(d.Reason); m != nil {
				res.lines = append(res.lines, fmt.Sprintf("fleet analysis: %s (%s hosts, %s requests) %s: %s", m[1], m[2], m[3], s.Name, m[4]))
			}
		}
	}
	res.lines = append(res.lines,
		fmt.Sprintf("sticky across hosts: %d of %d keys changed variant", res.changed, res.stickyOf),
		fmt.Sprintf("propagation: %d changes (weights and flag documents alternately), written to served on all %d hosts: p50 %s, max %s",
			len(lags), len(addrs), pct(lags, 0.5), pct(lags, 1)),
		fmt.Sprintf("propagation p99: %s", pct(lags, 0.99)))
	return res, nil
}

// analysisLine picks the verdict, hosts, requests and reason out of an
// analysis step's decision ("measurement 2/4: pass (fleet analysis (3
// hosts, 812 requests): ...)").
var analysisLine = regexp.MustCompile(`^measurement \d+/\d+: (\w+) \(fleet analysis \((\d+) hosts, (\d+) requests\): (.*)\)$`)

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p+0.5)].Round(100 * time.Microsecond)
}

func (x *example) hostAddrs(ctx context.Context) ([]string, error) {
	ms, err := liveMembers(ctx, x.e, x.keys)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, m := range ms {
		if m.Address != "" && slices.Contains(hostIDs, m.ID) {
			addrs = append(addrs, m.Address)
		}
	}
	if len(addrs) != len(hostIDs) {
		return nil, fmt.Errorf("%d hosts listed, want %d", len(addrs), len(hostIDs))
	}
	slices.Sort(addrs)
	return addrs, nil
}

func (x *example) get(ctx context.Context, c *http.Client, url, user string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if user != "" {
		req.Header.Set("X-User", user)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return strings.TrimSpace(string(b)), err
}

// checkout returns the variant a host served user.
func (x *example) checkout(ctx context.Context, c *http.Client, addr, user string) (string, error) {
	body, err := x.get(ctx, c, "http://"+addr+"/checkout", user)
	variant, _, _ := strings.Cut(body, " ")
	return variant, err
}

// hostState is a host's "/canary/state": canary document revision, weight
// and flag document version.
type hostState struct {
	rev    int64
	weight uint32
	flags  int64
}

func (x *example) state(ctx context.Context, c *http.Client, addr string) (hostState, error) {
	body, err := x.get(ctx, c, "http://"+addr+"/canary/state", "")
	if err != nil {
		return hostState{}, err
	}
	var s hostState
	_, err = fmt.Sscanf(body, "%d %d %d", &s.rev, &s.weight, &s.flags)
	return s, err
}

// sticky records, for each key, the lowest weight it was seen in the
// canary at, and the keys that changed variant.
type sticky struct {
	rounds  atomic.Int64
	mu      sync.Mutex
	low     map[string]uint32
	seen    map[string]bool
	changed map[string]bool
}

// checkSticky sends the same keys to every host, in rounds taken while all
// hosts serve the same canary document: a key that gets two variants in
// one round, or leaves the canary when the weight rises, changed variant.
func (x *example) checkSticky(ctx context.Context, c *http.Client, addrs []string, st *sticky) {
	sameDoc := func() (hostState, bool) {
		var first hostState
		for i, a := range addrs {
			s, err := x.state(ctx, c, a)
			if err != nil || s.rev == 0 || (i > 0 && s != first) {
				return hostState{}, false
			}
			first = s
		}
		return first, true
	}
	tick := time.NewTicker(300 * time.Millisecond) // a round's pace
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		before, ok := sameDoc()
		if !ok {
			continue
		}
		got := map[string][]string{}
		for k := range stickyKeys {
			key := fmt.Sprintf("sticky-%d", k)
			for _, a := range addrs {
				v, err := x.checkout(ctx, c, a, key)
				if err != nil {
					return
				}
				got[key] = append(got[key], v)
			}
		}
		if after, ok := sameDoc(); !ok || after != before {
			continue // a change arrived during the round: not comparable
		}
		st.rounds.Add(1)
		st.mu.Lock()
		for key, vs := range got {
			st.seen[key] = true
			low, in := st.low[key]
			switch {
			case slices.Contains(vs, "canary") && slices.Contains(vs, "stable"):
				st.mark(key)
			case vs[0] == "canary" && (!in || before.weight < low):
				st.low[key] = before.weight
			case vs[0] == "stable" && in && before.weight >= low:
				st.mark(key)
			}
		}
		st.mu.Unlock()
	}
}

func (st *sticky) mark(key string) {
	if st.changed == nil {
		st.changed = map[string]bool{}
	}
	st.changed[key] = true
}

// propagation makes n changes, alternately the canary weight and the flag
// document's ramp, and times each from its write to the moment every host
// reports it serves it. It ends with the weight at 100% and the flag at
// 100%, where the rollout left them.
func (x *example) propagation(ctx context.Context, c *http.Client, addrs []string, fw *fleetflags.Writer, n int) ([]time.Duration, error) {
	w := traffic.EngineWeights(x.e, x.keys, traffic.WeightsOptions{Salt: canarySalt, Target: canaryTarget})
	var lags []time.Duration
	for i := range n {
		start := time.Now()
		var rev int64
		var err error
		if i%2 == 0 {
			weight := uint32(10000)
			if i%4 == 0 {
				weight = 9900
			}
			rev, err = w.Put(ctx, traffic.Canary{Weight: weight, Salt: canarySalt, Target: canaryTarget})
		} else {
			p := 100.0
			if i%4 == 1 {
				p = 99
			}
			err = fw.UpdateOverride(ctx, flagKey, func(o *flags.Override) error {
				o.Percent = &flags.Percent{Variant: "on", Percent: p}
				return nil
			})
			if err == nil {
				_, rev, err = fw.Get(ctx)
			}
		}
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			for {
				s, err := x.state(ctx, c, a)
				if err != nil {
					return nil, err
				}
				if (i%2 == 0 && s.rev >= rev) || (i%2 == 1 && s.flags >= rev) {
					break
				}
				if ctx.Err() != nil {
					return nil, errors.New("a change did not reach every host")
				}
			}
		}
		lags = append(lags, time.Since(start))
	}
	return lags, nil
}
