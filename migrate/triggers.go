package migrate

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Dual write in the database.
//
// Old code writes only the old columns; new code writes the new columns
// (and may write the old ones too). While both run, a Transform's triggers
// keep the two sides in sync. What a statement wrote is known exactly,
// because Start moves the defaults of the old columns into the triggers
// (and the new columns get theirs only at Complete): a synced column that
// is NULL in an INSERT is one the statement did not write, or wrote NULL.
//
//	INSERT: new side unwritten (all NULL) -> fill the old columns' defaults
//	        where they are NULL, then derive new from old (an old writer);
//	        else old side unwritten -> derive old from new (a new writer
//	        writing only new); else keep both as written.
//	UPDATE: a side is written when one of its values changed (IS DISTINCT
//	        FROM: a no-op assignment is no write). Only old written ->
//	        derive new; only new written -> derive old; neither written and
//	        new all NULL (a row not yet backfilled, or the backfill's no-op
//	        update) -> derive new; both written -> keep both as written.
//
// The rule never derives a side that the statement itself wrote, which is
// what lets a new writer that writes both win, and a trigger never
// re-fires itself (see each dialect's createTriggers).

// syncPlan is a Transform resolved against the live table.
type syncPlan struct {
	table            string
	key              []string
	newCols, oldCols []string          // sorted for stable SQL
	up, down         map[string]string // column -> expression over NEW.
	// upTable and downTable are up and down over the table's own columns,
	// for a set-based UPDATE.
	upTable, downTable map[string]string
	// defaults are the old columns' defaults, which the triggers apply
	// (column -> SQL).
	defaults map[string]string
	// enforceNotNull lists old columns whose NOT NULL the triggers check
	// (SQLite, which checks NOT NULL before its AFTER triggers run).
	enforceNotNull []string
}

// ruleSQL is the rule above as SQL conditions of one dialect.
type ruleSQL struct {
	insNewUnwritten, insOldUnwritten string
	updDeriveNew, updDeriveOld       string
	defaults                         map[string]string
}

func (p *syncPlan) rule(d dialect) ruleSQL {
	q := d.quote
	allNull := func(cols []string) string {
		parts := make([]string, len(cols))
		for i, c := range cols {
			parts[i] = "NEW." + q(c) + " IS NULL"
		}
		return "(" + strings.Join(parts, " AND ") + ")"
	}
	changed := func(cols []string) string {
		parts := make([]string, len(cols))
		for i, c := range cols {
			parts[i] = d.distinct("NEW."+q(c), "OLD."+q(c))
		}
		return "(" + strings.Join(parts, " OR ") + ")"
	}
	oc, nc := changed(p.oldCols), changed(p.newCols)
	return ruleSQL{
		insNewUnwritten: allNull(p.newCols),
		insOldUnwritten: allNull(p.oldCols),
		updDeriveNew:    "((" + oc + " AND NOT " + nc + ") OR (NOT " + oc + " AND NOT " + nc + " AND " + allNull(p.newCols) + "))",
		updDeriveOld:    "(" + nc + " AND NOT " + oc + ")",
		defaults:        p.defaults,
	}
}

// trigName builds the name of a trigger (or function) of operation i.
func (r *Runner) trigName(i int) func(string) string {
	return func(suffix string) string { return fmt.Sprintf("baton_%s_%d_%s", r.m.Name, i, suffix) }
}

// plan builds the sync plan of o.
func (r *Runner) plan(o *opPlan) (*syncPlan, error) {
	t := o.t
	names := make([]string, 0, len(o.cols)+len(t.Add))
	for _, c := range o.cols {
		names = append(names, c.Name)
	}
	for _, c := range t.Add {
		names = append(names, c.Name)
	}
	idx := columnIndex(r.d, names)
	q := r.d.quote
	newRef := func(c string) string { return "NEW." + q(c) }
	tblRef := func(c string) string { return q(t.Table) + "." + q(c) }
	p := &syncPlan{table: t.Table, key: o.saved.Key, up: map[string]string{}, down: map[string]string{},
		upTable: map[string]string{}, downTable: map[string]string{}, defaults: map[string]string{}}
	for c, e := range t.Up {
		p.newCols = append(p.newCols, c)
		p.up[c] = "(" + rewriteColumns(r.d, e.For(r.d), idx, newRef) + ")"
		p.upTable[c] = "(" + rewriteColumns(r.d, e.For(r.d), idx, tblRef) + ")"
	}
	for c, e := range t.Down {
		p.oldCols = append(p.oldCols, c)
		p.down[c] = "(" + rewriteColumns(r.d, e.For(r.d), idx, newRef) + ")"
		p.downTable[c] = "(" + rewriteColumns(r.d, e.For(r.d), idx, tblRef) + ")"
	}
	slices.Sort(p.newCols)
	slices.Sort(p.oldCols)
	if t.Sync == SyncTriggers {
		for _, c := range o.saved.Old {
			if c.Default != "" {
				p.defaults[c.Name] = c.Default
			}
			if c.NotNull && r.movesNotNull() {
				p.enforceNotNull = append(p.enforceNotNull, c.Name)
			}
		}
	}
	for _, e := range slices.Collect(maps.Values(p.up)) {
		if strings.Contains(e, "$baton$") {
			return nil, fmt.Errorf("%w: migration %q: expression contains the reserved quote $baton$", ErrInvalid, r.m.Name)
		}
	}
	return p, nil
}

// movesNotNull reports whether Start must also move the old columns' NOT
// NULL into the triggers: on dialects that check it before the triggers
// can fill a column a new writer left out.
func (r *Runner) movesNotNull() bool { return !r.im.caps().lateNotNull }

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
