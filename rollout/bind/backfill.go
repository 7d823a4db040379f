package bind

import (
	"sort"
	"sync"

	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/rollout"
)

// BackfillTracker keeps the last backfill progress of each migration, for
// the rollout console's backfill step (rows, share done, rate, ETA). Give
// its Record to migrate.Options.OnProgress of the Runners, and the
// MigrationPhaser of the rollout to WithBackfillProgress. Its zero value
// is ready; it is safe for concurrent use.
type BackfillTracker struct {
	mu   sync.Mutex
	last map[string]map[string]migrate.Progress // migration → table → last batch
}

// Record keeps p; it is a migrate.Options.OnProgress.
func (b *BackfillTracker) Record(p migrate.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == nil {
		b.last = map[string]map[string]migrate.Progress{}
	}
	if b.last[p.Migration] == nil {
		b.last[p.Migration] = map[string]migrate.Progress{}
	}
	b.last[p.Migration][p.Table] = p
}

// BackfillProgress implements rollout.BackfillReporter: the rows of every
// table of migration name summed, the share done averaged over its
// tables, and the longest of their ETAs.
func (b *BackfillTracker) BackfillProgress(name string) (rollout.BackfillProgress, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	tables := b.last[name]
	if len(tables) == 0 {
		return rollout.BackfillProgress{}, false
	}
	keys := make([]string, 0, len(tables))
	for t := range tables {
		keys = append(keys, t)
	}
	sort.Strings(keys)
	var out rollout.BackfillProgress
	estimated := true
	for _, t := range keys {
		p := tables[t]
		out.Rows += p.Rows
		out.Fraction += p.Fraction / float64(len(tables))
		out.RowsPerSecond += p.RowsPerSecond
		out.ETASeconds = max(out.ETASeconds, p.ETA.Seconds())
		if p.Fraction > 0 {
			out.Total += int64(float64(p.Rows) / p.Fraction)
		} else {
			estimated = false
		}
	}
	if !estimated {
		out.Total = 0
	}
	return out, true
}

// WithBackfillProgress returns m, which also reports the backfill progress
// b keeps (rollout.BackfillReporter).
func WithBackfillProgress(m rollout.MigrationPhaser, b *BackfillTracker) rollout.MigrationPhaser {
	return reportingPhaser{m, b}
}

type reportingPhaser struct {
	rollout.MigrationPhaser
	b *BackfillTracker
}

func (r reportingPhaser) BackfillProgress(name string) (rollout.BackfillProgress, bool) {
	return r.b.BackfillProgress(name)
}

var (
	_ rollout.BackfillReporter = (*BackfillTracker)(nil)
	_ rollout.BackfillReporter = reportingPhaser{}
)
