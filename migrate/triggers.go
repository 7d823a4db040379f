package migrate

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Dual write in the database.
//
// Old code writes only the old columns; new code writes the new columns
// (and may write the old ones too). While both run, a Transform's triggers
// keep the two sides in sync under this conflict rule:
//
//	INSERT: if every new column is NULL, derive the new columns from the
//	        old ones (an old writer); else if every old column is NULL,
//	        derive the old columns from the new ones (a new writer writing
//	        only new); else keep both as written.
//	UPDATE: if old columns changed and new ones did not, derive new; if new
//	        columns changed and old ones did not, derive old; if neither
//	        changed and the new columns are all NULL (a row not yet
//	        backfilled, or the backfill's no-op update), derive new; if both
//	        changed, keep both as written (the writer set both).
//
// "Changed" compares values (IS DISTINCT FROM), so a no-op assignment is no
// change. The rule never derives a side that the statement itself wrote,
// which is what lets a new writer that writes both win, and a trigger never
// re-fires itself:
//   - PostgreSQL: one BEFORE INSERT OR UPDATE row trigger assigns NEW.x in
//     PL/pgSQL; it writes no row, so nothing recurses.
//   - MySQL/MariaDB: BEFORE INSERT and BEFORE UPDATE triggers SET NEW.x.
//   - SQLite cannot assign NEW in a BEFORE trigger, so AFTER triggers
//     UPDATE the row by its key. recursive_triggers is off by default, but
//     the UPDATE issued by one trigger would still fire the *other* UPDATE
//     trigger; each trigger therefore marks its own write in the guard
//     table (<prefix>guard: insert, update, delete within the trigger) and
//     the UPDATE triggers do not fire while the mark exists. SQLite has
//     one writer at a time and the mark never commits, so it is private to
//     the statement.

// pgBackfillGUC is the custom setting a PostgreSQL backfill session sets
// so that the dual-write trigger skips its rows.
const pgBackfillGUC = "baton.backfill"

// trigName builds the name of a trigger (or function) of operation i.
func (r *Runner) trigName(i int, suffix string) string {
	return fmt.Sprintf("baton_%s_%d_%s", r.m.Name, i, suffix)
}

// syncPlan is a Transform resolved against the live table.
type syncPlan struct {
	table    string
	key      string
	newCols  []string // sorted for stable SQL
	oldCols  []string
	up, down map[string]string // column -> expression with references qualified by NEW.
	// upTable is up with references qualified by the table name, for a
	// set-based UPDATE.
	upTable map[string]string
}

func (r *Runner) plan(ctx context.Context, t Transform) (*syncPlan, error) {
	cols, err := r.d.columns(ctx, r.db, t.Table)
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%w: migration %q: table %q does not exist", ErrInvalid, r.m.Name, t.Table)
	}
	names := make([]string, 0, len(cols)+len(t.Add))
	key := t.Key
	var pks []colInfo
	for _, c := range cols {
		names = append(names, c.Name)
		if c.PK {
			pks = append(pks, c)
		}
	}
	if key == "" {
		if len(pks) != 1 || !strings.Contains(strings.ToLower(pks[0].Type), "int") {
			return nil, fmt.Errorf("%w: migration %q: table %q needs a single-column integer primary key for keyset batches (or set Transform.Key)", ErrUnsupported, r.m.Name, t.Table)
		}
		key = pks[0].Name
	}
	for _, c := range t.Add {
		names = append(names, c.Name)
	}
	idx := columnIndex(r.d, names)
	newRef := func(c string) string { return "NEW." + r.d.quote(c) }
	tblRef := func(c string) string { return r.d.quote(t.Table) + "." + r.d.quote(c) }
	p := &syncPlan{table: t.Table, key: key, up: map[string]string{}, down: map[string]string{}, upTable: map[string]string{}}
	for c, e := range t.Up {
		p.newCols = append(p.newCols, c)
		p.up[c] = "(" + rewriteColumns(r.d, e.For(r.d), idx, newRef) + ")"
		p.upTable[c] = "(" + rewriteColumns(r.d, e.For(r.d), idx, tblRef) + ")"
	}
	for c, e := range t.Down {
		p.oldCols = append(p.oldCols, c)
		p.down[c] = "(" + rewriteColumns(r.d, e.For(r.d), idx, newRef) + ")"
	}
	slices.Sort(p.newCols)
	slices.Sort(p.oldCols)
	for _, e := range append(slices.Collect(mapsValues(p.up)), slices.Collect(mapsValues(p.down))...) {
		if strings.Contains(e, "$baton$") {
			return nil, fmt.Errorf("%w: migration %q: expression contains the reserved quote $baton$", ErrInvalid, r.m.Name)
		}
	}
	return p, nil
}

func mapsValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// conditions over NEW/OLD, joined with AND/OR.
func (r *Runner) allNull(rec string, cols []string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = rec + "." + r.d.quote(c) + " IS NULL"
	}
	return "(" + strings.Join(parts, " AND ") + ")"
}

func (r *Runner) changed(cols []string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		n, o := "NEW."+r.d.quote(c), "OLD."+r.d.quote(c)
		switch r.d {
		case PostgreSQL:
			parts[i] = n + " IS DISTINCT FROM " + o
		case MySQL:
			parts[i] = "NOT (" + n + " <=> " + o + ")"
		case SQLite:
			parts[i] = n + " IS NOT " + o
		}
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

// deriveNewCond and deriveOldCond are the UPDATE rule above.
func (r *Runner) deriveNewCond(p *syncPlan) string {
	oc, nc := r.changed(p.oldCols), r.changed(p.newCols)
	return "((" + oc + " AND NOT " + nc + ") OR (NOT " + oc + " AND NOT " + nc + " AND " + r.allNull("NEW", p.newCols) + "))"
}

func (r *Runner) deriveOldCond(p *syncPlan) string {
	return "(" + r.changed(p.newCols) + " AND NOT " + r.changed(p.oldCols) + ")"
}

func (r *Runner) assigns(cols []string, exprs map[string]string, sep, target, op string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = target + r.d.quote(c) + op + exprs[c]
	}
	return strings.Join(parts, sep)
}

func (r *Runner) createTriggers(ctx context.Context, i int, p *syncPlan) error {
	q := r.d.quote
	tbl := q(p.table)
	switch r.d {
	case PostgreSQL:
		fn := q(r.trigName(i, "sync"))
		body := fmt.Sprintf(`CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $baton$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF %s THEN
      %s;
    ELSIF %s THEN
      %s;
    END IF;
  ELSIF %s THEN
    %s;
  ELSIF %s THEN
    %s;
  END IF;
  RETURN NEW;
END
$baton$`, fn,
			r.allNull("NEW", p.newCols), r.assigns(p.newCols, p.up, "; ", "NEW.", " := "),
			r.allNull("NEW", p.oldCols), r.assigns(p.oldCols, p.down, "; ", "NEW.", " := "),
			r.deriveNewCond(p), r.assigns(p.newCols, p.up, "; ", "NEW.", " := "),
			r.deriveOldCond(p), r.assigns(p.oldCols, p.down, "; ", "NEW.", " := "))
		if err := r.execDDL(ctx, body); err != nil {
			return err
		}
		// The WHEN clause lets the backfill's own session skip the trigger
		// (see backfill.go) without a PL/pgSQL call per row.
		return r.execDDL(ctx, fmt.Sprintf(`CREATE OR REPLACE TRIGGER %s BEFORE INSERT OR UPDATE ON %s FOR EACH ROW WHEN (current_setting('%s', true) IS DISTINCT FROM 'on') EXECUTE FUNCTION %s()`,
			q(r.trigName(i, "sync")), tbl, pgBackfillGUC, fn))
	case MySQL:
		ins := fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s BEFORE INSERT ON %s FOR EACH ROW BEGIN\n  IF %s THEN SET %s;\n  ELSEIF %s THEN SET %s;\n  END IF;\nEND",
			q(r.trigName(i, "bi")), tbl,
			r.allNull("NEW", p.newCols), r.assigns(p.newCols, p.up, ", ", "NEW.", " = "),
			r.allNull("NEW", p.oldCols), r.assigns(p.oldCols, p.down, ", ", "NEW.", " = "))
		upd := fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s BEFORE UPDATE ON %s FOR EACH ROW BEGIN\n  IF %s THEN SET %s;\n  ELSEIF %s THEN SET %s;\n  END IF;\nEND",
			q(r.trigName(i, "bu")), tbl,
			r.deriveNewCond(p), r.assigns(p.newCols, p.up, ", ", "NEW.", " = "),
			r.deriveOldCond(p), r.assigns(p.oldCols, p.down, ", ", "NEW.", " = "))
		if err := r.execDDL(ctx, ins); err != nil {
			return err
		}
		return r.execDDL(ctx, upd)
	case SQLite:
		guard := r.t.guard
		where := " WHERE " + q(p.key) + " = NEW." + q(p.key)
		mk := func(name, event, cond string, cols []string, exprs map[string]string) string {
			return fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s AFTER %s ON %s WHEN NOT EXISTS (SELECT 1 FROM %s) AND %s BEGIN\n  INSERT INTO %s (x) VALUES (1);\n  UPDATE %s SET %s%s;\n  DELETE FROM %s;\nEND",
				q(r.trigName(i, name)), event, tbl, guard, cond, guard, tbl, r.assigns(cols, exprs, ", ", "", " = "), where, guard)
		}
		stmts := []string{
			mk("ai_new", "INSERT", r.allNull("NEW", p.newCols), p.newCols, p.up),
			mk("ai_old", "INSERT", "NOT "+r.allNull("NEW", p.newCols)+" AND "+r.allNull("NEW", p.oldCols), p.oldCols, p.down),
			mk("au_new", "UPDATE", r.deriveNewCond(p), p.newCols, p.up),
			mk("au_old", "UPDATE", r.deriveOldCond(p), p.oldCols, p.down),
		}
		for _, s := range stmts {
			if err := r.execDDL(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: triggers", ErrUnsupported)
}

func (r *Runner) dropTriggers(ctx context.Context, i int, t Transform) error {
	q := r.d.quote
	var stmts []string
	switch r.d {
	case PostgreSQL:
		if ok, err := r.d.tableExists(ctx, r.db, t.Table); err != nil {
			return err
		} else if ok {
			stmts = append(stmts, "DROP TRIGGER IF EXISTS "+q(r.trigName(i, "sync"))+" ON "+q(t.Table))
		}
		stmts = append(stmts, "DROP FUNCTION IF EXISTS "+q(r.trigName(i, "sync"))+"()")
	case MySQL:
		stmts = []string{"DROP TRIGGER IF EXISTS " + q(r.trigName(i, "bi")), "DROP TRIGGER IF EXISTS " + q(r.trigName(i, "bu"))}
	case SQLite:
		for _, n := range []string{"ai_new", "ai_old", "au_new", "au_old"} {
			stmts = append(stmts, "DROP TRIGGER IF EXISTS "+q(r.trigName(i, n)))
		}
	}
	for _, s := range stmts {
		if err := r.execDDL(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// expandTransform adds the new columns, then installs the triggers. Rows
// written between the two by old code keep NULL new columns, which the
// backfill fills.
func (r *Runner) expandTransform(ctx context.Context, i int, t Transform) error {
	for _, c := range t.Add {
		if err := r.addColumn(ctx, t.Table, c); err != nil {
			return err
		}
	}
	p, err := r.plan(ctx, t)
	if err != nil {
		return err
	}
	if t.Sync == SyncApplication {
		return nil
	}
	return r.createTriggers(ctx, i, p)
}
