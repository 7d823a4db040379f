package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
)

// DefaultMaxAge is AnalyzerOptions.MaxAge when zero: three publications.
const DefaultMaxAge = 3 * DefaultPublishInterval

// AnalyzerOptions configure NewAnalyzer. Zero fields mean DefaultName,
// canary's default analysis, DefaultMaxAge, one host and the system clock.
type AnalyzerOptions struct {
	// Name of the canary; empty means DefaultName.
	Name string
	// Analysis configures the analysis (canary.NewAnalyzer), as for one
	// host. With Looks zero the budget is planned over the rollout's
	// looks (rollout.LookPlanner).
	Analysis canary.AnalysisOptions
	// MaxAge leaves out a snapshot taken longer ago than this: a host
	// that stopped publishing (dead, stopped, cut off) no longer counts
	// even before its lease expires. Zero means DefaultMaxAge.
	MaxAge time.Duration
	// MinHosts is the fewest hosts a decision rests on: with fewer
	// recent snapshots at the fleet's weight the decision is
	// inconclusive and spends no look (a host that has not yet applied a
	// change is waited for instead of judged without). Zero means 1.
	// Set it to the fleet's size to judge every step on every host; a
	// host that dies then holds the analysis inconclusive until the
	// rollout's MaxInconclusive ends it.
	MinHosts int
	// Now tells the time snapshots are aged against; nil means time.Now.
	Now func() time.Time
}

// Decision is one fleet-wide analysis: the merged verdict and what it
// rests on. The zero value is an inconclusive decision on no data.
type Decision struct {
	Report canary.Report
	// Hosts are the members whose snapshots were merged, sorted.
	Hosts []string
	// Left are the snapshots left out, each "member: why".
	Left []string
	// Requests is the number of requests (stable and canary) in the
	// window the analysis compared.
	Requests uint64
}

// String is the decision in one line: "fail (3 hosts, 1234 requests)
// <reason>".
func (d Decision) String() string {
	return fmt.Sprintf("%s (%d hosts, %d requests) %s", d.Report.Verdict, len(d.Hosts), d.Requests, d.Report.Reason)
}

// Analyzer runs canary's analysis on the traffic of the whole fleet: it
// reads every live member's published snapshot, keeps those taken within
// MaxAge at the weight of the fleet's canary document (a host that has not
// applied, or not yet published, the last change would be judged as the
// previous step), merges them (canary.Snapshot.Merge: counts, histograms
// and key groups add up exactly) and judges the merge as one splitter's. It is the
// rollout.Analyzer of a fleet rollout's analysis and canary steps, run by
// the driver. Use NewAnalyzer; the zero value is not usable. It is safe
// for concurrent use.
type Analyzer struct {
	m *fleet.Member
	o AnalyzerOptions

	mu    sync.Mutex
	a     *canary.Analyzer
	looks int
}

// NewAnalyzer returns an Analyzer reading m's fleet. Invalid analysis
// options are refused here.
func NewAnalyzer(m *fleet.Member, o AnalyzerOptions) (*Analyzer, error) {
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MinHosts < 0 {
		return nil, fmt.Errorf("traffic: NewAnalyzer: MinHosts %d is negative", o.MinHosts)
	}
	if o.MinHosts == 0 {
		o.MinHosts = 1
	}
	if _, err := canary.NewAnalyzer(o.Analysis); err != nil {
		return nil, fmt.Errorf("traffic: NewAnalyzer: %w", err)
	}
	return &Analyzer{m: m, o: o}, nil
}

// PlanLooks implements rollout.LookPlanner: the alpha budget is spent
// over n looks (when AnalysisOptions.Looks is zero). The same plan again
// (a rollout resumed by this driver) keeps the looks already spent; the
// budget of a rollout taken over by another driver starts afresh there
// (see Known limits in the package documentation).
func (a *Analyzer) PlanLooks(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.looks != n {
		a.looks, a.a = n, nil
	}
}

func (a *Analyzer) analyzer() *canary.Analyzer {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.a == nil {
		o := a.o.Analysis
		if o.Looks == 0 {
			o.Looks = a.looks
		}
		a.a, _ = canary.NewAnalyzer(o) // checked by NewAnalyzer
	}
	return a.a
}

// Decide reads the live members' snapshots, merges them and analyses the
// merge, spending one look of the alpha budget when a test runs.
func (a *Analyzer) Decide(ctx context.Context) (Decision, error) {
	l := a.m.Layout()
	docs, _, err := a.m.Engine().List(ctx, metricsPrefix(l))
	if err != nil {
		return Decision{}, fmt.Errorf("traffic: reading the fleet's snapshots: %w", err)
	}
	live := map[string]bool{}
	for _, mi := range a.m.Members() {
		live[mi.ID] = true
	}
	// The weight the fleet is at: a snapshot at another weight is from a
	// host that has not applied or not yet published the last change, and
	// would be judged as the previous step's.
	want, ok := uint32(0), false
	switch d, err := a.m.Engine().Get(ctx, Key(l, a.o.Name)); {
	case err == nil:
		c, err := decode(d)
		if err != nil {
			return Decision{}, err
		}
		want, ok = c.Weight, true
	case !errors.Is(err, fleet.ErrNotFound):
		return Decision{}, fmt.Errorf("traffic: reading the fleet's canary weight: %w", err)
	}
	snaps := map[string]*canary.Snapshot{}
	var left []string
	for _, d := range docs {
		member := memberOf(l, d.Key, a.o.Name)
		switch {
		case member == "":
			continue // another canary's
		case !live[member]:
			left = append(left, member+": not a live member")
			continue
		}
		var s canary.Snapshot
		if err := json.Unmarshal(d.Value, &s); err != nil {
			left = append(left, member+": "+err.Error())
			continue
		}
		if ok && s.Weight != want {
			left = append(left, fmt.Sprintf("%s: at weight %d, the fleet's is %d (the change not applied or not published there yet)", member, s.Weight, want))
			continue
		}
		snaps[member] = &s
	}
	merged, hosts, more := Merge(snaps, a.o.Now(), a.o.MaxAge)
	d := Decision{Hosts: hosts, Left: append(left, more...)}
	slices.Sort(d.Left)
	switch {
	case len(hosts) == 0:
		d.Report = canary.Report{At: a.o.Now(), Reason: "no live host has published a recent snapshot at the fleet's weight" + leftText(d.Left)}
		return d, nil
	case len(hosts) < a.o.MinHosts:
		d.Report = canary.Report{At: a.o.Now(), Reason: fmt.Sprintf("%d of the %d hosts needed have published a recent snapshot at the fleet's weight", len(hosts), a.o.MinHosts) + leftText(d.Left)}
		return d, nil
	}
	d.Report = a.analyzer().Analyze(merged)
	d.Requests = d.Report.Stable.Requests + d.Report.Canary.Requests
	if d.Report.Weight == canary.MaxWeight {
		d.Report.Verdict, d.Report.Reason = d.Report.Alone()
	}
	return d, nil
}

func leftText(left []string) string {
	if len(left) == 0 {
		return ""
	}
	return " (left out: " + strings.Join(left, "; ") + ")"
}

// Analyze implements rollout.Analyzer: canary's pass, fail and
// inconclusive, with a reason that says how many hosts and requests the
// decision used.
func (a *Analyzer) Analyze(ctx context.Context) (rollout.Verdict, string, error) {
	if err := ctx.Err(); err != nil {
		return rollout.Inconclusive, "", err
	}
	d, err := a.Decide(ctx)
	if err != nil {
		return rollout.Inconclusive, "", err
	}
	reason := fmt.Sprintf("fleet analysis (%d hosts, %d requests): %s", len(d.Hosts), d.Requests, d.Report.Reason)
	switch d.Report.Verdict {
	case canary.Pass:
		return rollout.Pass, reason, nil
	case canary.Fail:
		return rollout.Fail, reason, nil
	}
	return rollout.Inconclusive, reason, nil
}

// Merge merges the snapshots of hosts (member id to snapshot) taken within
// maxAge of now, and returns the merge with the hosts it holds; the
// others are returned as "member: why". The Analyzer merges this way; a
// simulation can call it directly.
func Merge(snaps map[string]*canary.Snapshot, now time.Time, maxAge time.Duration) (merged *canary.Snapshot, hosts, left []string) {
	merged = &canary.Snapshot{}
	for _, id := range slices.Sorted(maps.Keys(snaps)) {
		s := snaps[id]
		if age := now.Sub(s.At); age > maxAge {
			left = append(left, fmt.Sprintf("%s: snapshot %s old (more than %s)", id, age.Round(time.Millisecond), maxAge))
			continue
		}
		if err := merged.Merge(s); err != nil {
			left = append(left, id+": "+err.Error())
			continue
		}
		hosts = append(hosts, id)
	}
	return merged, hosts, left
}

var (
	_ rollout.Analyzer    = (*Analyzer)(nil)
	_ rollout.LookPlanner = (*Analyzer)(nil)
)
