package migrate

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// contract is Complete's work: every operation's contract step, in order.
func (r *Runner) contract(ctx context.Context) error {
	p, err := r.prepare(ctx)
	if err != nil {
		return err
	}
	q := r.d.quote
	for i, op := range r.m.Operations {
		if o := p.op(i); o != nil {
			if err := r.contractTransform(ctx, o); err != nil {
				return err
			}
			continue
		}
		switch o := op.(type) {
		case SetNotNull:
			c, ok, err := r.column(ctx, o.Table, o.Column)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: column %q of table %q does not exist", ErrInvalid, o.Column, o.Table)
			}
			stmts, err := r.im.notNull().contract(o.Table, r.checkName(i, -1), c)
			if err != nil {
				return err
			}
			for _, s := range stmts {
				if err := r.execDDL(ctx, s); err != nil {
					return err
				}
			}
		case DropColumn:
			if err := r.dropColumn(ctx, o.Table, o.Column); err != nil {
				return err
			}
		case DropTable:
			if err := r.execDDL(ctx, "DROP TABLE IF EXISTS "+q(o.Table)); err != nil {
				return err
			}
		case RawSQL:
			if o.Contract {
				if err := r.execRaw(ctx, o.Up); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (r *Runner) column(ctx context.Context, table, name string) (colInfo, bool, error) {
	cols, err := r.im.columns(ctx, r.db, table)
	if err != nil {
		return colInfo{}, false, err
	}
	c, ok := r.colNamed(cols, name)
	return c, ok, nil
}

// contractTransform drops the triggers and the old columns and gives the
// new columns what they carry, as one unit: no concurrent statement sees
// the old column without its trigger (a new writer's insert would leave
// it NULL) or the trigger without its column. Where DDL is not
// transactional, the NOT NULL that needs a table rebuild (MySQL) runs
// online after the unit.
func (r *Runner) contractTransform(ctx context.Context, o *opPlan) error {
	t := o.t
	if ok, err := r.im.tableExists(ctx, r.db, t.Table); err != nil || !ok {
		return err
	}
	transactional := r.im.caps().transactional
	cols, err := r.im.columns(ctx, r.db, t.Table)
	if err != nil {
		return err
	}
	oldThere := slices.ContainsFunc(t.Drop, func(c string) bool { _, ok := r.colNamed(cols, c); return ok })
	if !transactional {
		// The old column's foreign keys go first, and the references into
		// it: MySQL refuses to drop a column or an index a foreign key
		// needs, and cannot drop one under a table lock without locking
		// the other table too. The new column's own keep the data checked
		// meanwhile, and the moved references are added back after the unit.
		for _, k := range o.saved.Constraints {
			var err error
			switch {
			case k.Incoming && oldThere:
				err = r.dropConstraintIfExists(ctx, k.Table, k.Name, k.Kind, "")
			case !k.Incoming:
				err = r.dropConstraintIfExists(ctx, t.Table, k.Name, k.Kind, k.Temp)
			}
			if err != nil {
				return err
			}
		}
	}
	var after [][]string
	err = r.execUnit(ctx, t.Table, func(ctx context.Context) ([]string, error) {
		after = nil
		cols, err := r.im.columns(ctx, r.db, t.Table)
		if err != nil {
			return nil, err
		}
		ixs, err := r.im.indexes(ctx, r.db, t.Table)
		if err != nil {
			return nil, err
		}
		hasIndex := func(name string) bool {
			return slices.ContainsFunc(ixs, func(ix indexInfo) bool { return strings.EqualFold(ix.Name, name) })
		}
		stmts := r.im.dropTriggers(r.trigName(o.op), t.Table, true)
		oldThere := slices.ContainsFunc(t.Drop, func(c string) bool { _, ok := r.colNamed(cols, c); return ok })
		var moved []string
		for _, k := range o.saved.Constraints {
			if !k.Incoming || !transactional || !oldThere {
				continue
			}
			// References into the old column move with it: dropped before
			// the unique constraint they need, added for the new column
			// (NOT VALID; validated after the unit) once it has its own.
			if ok, err := r.im.constraintExists(ctx, r.db, k.Table, k.Name); err != nil {
				return nil, err
			} else if ok {
				stmts = append(stmts, "ALTER TABLE "+r.d.quote(k.Table)+" DROP CONSTRAINT "+r.d.quote(k.Name))
			}
			moved = append(moved, "ALTER TABLE "+r.d.quote(k.Table)+" ADD CONSTRAINT "+r.d.quote(k.Name)+" "+k.Def+" NOT VALID")
		}
		for _, ix := range o.saved.Indexes {
			switch {
			case !hasIndex(ix.Name) || !hasIndex(ix.Temp):
			case ix.Owned && !ix.Constraint: // dropped with its column
			case ix.Constraint:
				stmts = append(stmts, "ALTER TABLE "+r.d.quote(t.Table)+" DROP CONSTRAINT "+r.d.quote(ix.Name))
			default:
				stmts = append(stmts, r.im.dropIndex(t.Table, ix.Name, true))
			}
		}
		var renames []string
		for _, k := range o.saved.Constraints {
			temp, err := r.im.constraintExists(ctx, r.db, t.Table, k.Temp)
			if err != nil || !temp {
				continue
			}
			old, err := r.im.constraintExists(ctx, r.db, t.Table, k.Name)
			if err != nil {
				return nil, err
			}
			if old && transactional {
				stmts = append(stmts, "ALTER TABLE "+r.d.quote(t.Table)+" DROP CONSTRAINT "+r.d.quote(k.Name))
			}
			renames = append(renames, r.im.renameConstraint(t.Table, k.Temp, k.Name)...)
		}
		for _, c := range t.Drop {
			if _, ok := r.colNamed(cols, c); ok {
				stmts = append(stmts, r.im.dropColumn(t.Table, c, r.uniqueConstraint(ixs, c)))
			}
		}
		stmts = append(stmts, renames...)
		// Old columns that stay get back what Start moved into the triggers.
		var kept []colInfo
		for _, old := range o.saved.Old {
			if !slices.ContainsFunc(t.Drop, func(c string) bool { return strings.EqualFold(c, old.Name) }) {
				kept = append(kept, old)
			}
		}
		restore, err := r.restoreOld(t.Table, cols, kept)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, restore...)
		for _, ix := range o.saved.Indexes {
			if !hasIndex(ix.Temp) {
				continue
			}
			if ix.Constraint {
				stmts = append(stmts, "ALTER TABLE "+r.d.quote(t.Table)+" ADD CONSTRAINT "+r.d.quote(ix.Name)+" UNIQUE USING INDEX "+r.d.quote(ix.Temp))
			} else {
				stmts = append(stmts, r.im.renameIndex(t.Table, ix.Temp, ix.Name)...)
			}
		}
		stmts = append(stmts, moved...)
		for j, nc := range o.saved.New {
			c, ok := r.colNamed(cols, nc.Name)
			if !ok {
				return nil, fmt.Errorf("%w: migration %q: new column %q of table %q is missing", ErrInvalid, r.m.Name, nc.Name, t.Table)
			}
			var in, out colAttrs
			if nc.Default != "" && c.Default != nc.Default {
				in.Default = &nc.Default
			}
			if nc.Comment != "" && c.Comment != nc.Comment {
				out.Comment = &nc.Comment
				if transactional {
					in.Comment, out.Comment = out.Comment, nil
				}
			}
			var nn []string
			if nc.NotNull && !c.NotNull {
				if transactional {
					if r.im.notNull().supported {
						if nn, err = r.im.notNull().contract(t.Table, r.checkName(o.op, j), c); err != nil {
							return nil, err
						}
					} else {
						yes := true
						in.NotNull = &yes
					}
				} else {
					yes := true
					out.NotNull = &yes
				}
			}
			s, err := r.im.columnAttrs(t.Table, c, in)
			if err != nil {
				return nil, err
			}
			stmts = append(append(stmts, s...), nn...)
			if out.NotNull != nil || out.Comment != nil {
				if in.Default != nil {
					c.Default = *in.Default
				}
				s, err := r.im.columnAttrs(t.Table, c, out)
				if err != nil {
					return nil, err
				}
				after = append(after, s)
			}
		}
		return stmts, nil
	})
	if err != nil {
		return err
	}
	for _, alts := range after {
		if err := r.execAlt(ctx, alts); err != nil {
			return err
		}
	}
	for _, k := range o.saved.Constraints {
		if !k.Incoming {
			continue
		}
		if transactional {
			if err := r.execDDL(ctx, "ALTER TABLE "+r.d.quote(k.Table)+" VALIDATE CONSTRAINT "+r.d.quote(k.Name)); err != nil {
				return err
			}
			continue
		}
		if ok, err := r.im.constraintExists(ctx, r.db, k.Table, k.Name); err != nil {
			return err
		} else if !ok {
			if err := r.im.foreignKey().add(ctx, r, k.Table, k.Name, k.Def); err != nil {
				return err
			}
		}
	}
	return nil
}

// rollback is Rollback's work: every operation's expand step undone, in
// reverse order, then the checkpoints and saved schema forgotten.
func (r *Runner) rollback(ctx context.Context) error {
	p, err := r.resolveForRollback(ctx)
	if err != nil {
		return err
	}
	q := r.d.quote
	for i := len(r.m.Operations) - 1; i >= 0; i-- {
		op := r.m.Operations[i]
		if o := p.op(i); o != nil {
			if err := r.rollbackTransform(ctx, o); err != nil {
				return err
			}
			continue
		}
		var err error
		switch o := op.(type) {
		case CreateTable:
			err = r.execDDL(ctx, "DROP TABLE IF EXISTS "+q(o.Table))
		case AddColumn:
			err = r.dropColumn(ctx, o.Table, o.Column.Name)
		case CreateIndex:
			err = r.dropIndexIfExists(ctx, o.Table, o.Name)
		case SetNotNull:
			if s := r.im.notNull().rollback(o.Table, r.checkName(i, -1)); s != "" {
				err = r.execDDL(ctx, s)
			}
		case AddForeignKey:
			var ok bool
			if ok, err = r.im.constraintExists(ctx, r.db, o.Table, o.Name); err == nil && ok {
				err = r.execDDL(ctx, r.im.foreignKey().drop(o.Table, o.Name))
			}
		case RawSQL:
			if !o.Contract && strings.TrimSpace(o.Down) != "" {
				err = r.execRaw(ctx, o.Down)
			}
		}
		if err != nil {
			return err
		}
	}
	return r.forget(ctx)
}

// resolveForRollback is resolve for a migration that may have been
// started only partly: operations Start never recorded have nothing to
// undo but their columns, which the plan built from the catalog covers.
func (r *Runner) resolveForRollback(ctx context.Context) (*prepared, error) {
	p := &prepared{}
	for i, op := range r.m.Operations {
		o, err := r.opPlan(ctx, i, op)
		if err != nil {
			return nil, err
		}
		if o != nil {
			p.ops = append(p.ops, o)
		}
	}
	return p, nil
}

// uniqueConstraint reports whether col has a UNIQUE constraint of its own
// among ixs.
func (r *Runner) uniqueConstraint(ixs []indexInfo, col string) bool {
	return slices.ContainsFunc(ixs, func(ix indexInfo) bool {
		return ix.Constraint && len(ix.Columns) == 1 && strings.EqualFold(ix.Columns[0], col)
	})
}

// restoreOld returns the statements that give the old columns (as saved,
// before Start) back the defaults and NOT NULL that Start moved into the
// triggers; cols is the table as it is now.
func (r *Runner) restoreOld(table string, cols, saved []colInfo) ([]string, error) {
	var out []string
	for _, old := range saved {
		c, ok := r.colNamed(cols, old.Name)
		if !ok {
			continue
		}
		var set colAttrs
		if c.Default != old.Default {
			set.Default = &old.Default
		}
		if c.NotNull != old.NotNull {
			set.NotNull = &old.NotNull
		}
		if set.Default == nil && set.NotNull == nil {
			continue
		}
		if old.Def != "" {
			set = colAttrs{Def: &old.Def} // exactly as it was written
		}
		s, err := r.im.columnAttrs(table, c, set)
		if err != nil {
			return nil, err
		}
		out = append(out, s...)
	}
	return out, nil
}

// dropConstraintIfExists drops constraint name of table, if it exists (and,
// when unless is set, only while constraint unless exists too).
func (r *Runner) dropConstraintIfExists(ctx context.Context, table, name, kind, unless string) error {
	ok, err := r.im.constraintExists(ctx, r.db, table, name)
	if err != nil || !ok {
		return err
	}
	if unless != "" {
		if ok, err := r.im.constraintExists(ctx, r.db, table, unless); err != nil || !ok {
			return err
		}
	}
	if kind == "FOREIGN KEY" {
		return r.execDDL(ctx, r.im.foreignKey().drop(table, name))
	}
	return r.execDDL(ctx, "ALTER TABLE "+r.d.quote(table)+" DROP CONSTRAINT "+r.d.quote(name))
}

func (r *Runner) dropIndexIfExists(ctx context.Context, table, name string) error {
	ok, err := indexExists(ctx, r.im, r.db, table, name)
	if err != nil || !ok {
		return err
	}
	return r.execDDL(ctx, r.im.dropIndex(table, name, false))
}

// rollbackTransform drops the triggers and the new columns and gives the
// old columns back what Start moved into the triggers, as one unit.
func (r *Runner) rollbackTransform(ctx context.Context, o *opPlan) error {
	t := o.t
	if ok, err := r.im.tableExists(ctx, r.db, t.Table); err != nil || !ok {
		return err
	}
	// Carried indexes are built online by Backfill; drop them the same way
	// first, outside the unit, and the carried constraints with them.
	for _, k := range o.saved.Constraints {
		if k.Incoming {
			continue // untouched until Complete
		}
		if err := r.dropConstraintIfExists(ctx, t.Table, k.Temp, k.Kind, ""); err != nil {
			return err
		}
	}
	for _, ix := range o.saved.Indexes { // after the keys that may need them
		if err := r.dropIndexIfExists(ctx, t.Table, ix.Temp); err != nil {
			return err
		}
	}
	return r.execUnit(ctx, t.Table, func(ctx context.Context) ([]string, error) {
		cols, err := r.im.columns(ctx, r.db, t.Table)
		if err != nil {
			return nil, err
		}
		stmts := r.im.dropTriggers(r.trigName(o.op), t.Table, true)
		restore, err := r.restoreOld(t.Table, cols, o.saved.Old)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, restore...)
		nn := r.im.notNull()
		for j := range t.Add {
			if nn.supported {
				if s := nn.rollback(t.Table, r.checkName(o.op, j)); s != "" {
					stmts = append(stmts, s)
				}
			}
		}
		for _, c := range t.Add {
			if _, ok := r.colNamed(cols, c.Name); ok {
				stmts = append(stmts, "ALTER TABLE "+r.d.quote(t.Table)+" DROP COLUMN "+r.d.quote(c.Name))
			}
		}
		return stmts, nil
	})
}
