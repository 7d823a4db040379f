package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// expand is Start's work: every operation's expand step, in order.
func (r *Runner) expand(ctx context.Context) error {
	p, err := r.prepare(ctx)
	if err != nil {
		return err
	}
	q := r.d.quote
	for i, op := range r.m.Operations {
		if o := p.op(i); o != nil {
			if err := r.expandTransform(ctx, op, o); err != nil {
				return err
			}
			continue
		}
		switch o := op.(type) {
		case CreateTable:
			defs := make([]string, len(o.Columns))
			for j, c := range o.Columns {
				defs[j] = r.columnDef(c)
				if c.PrimaryKey {
					defs[j] += " PRIMARY KEY" + r.im.autoIncrement(c.Type)
				}
			}
			if err := r.execDDL(ctx, "CREATE TABLE IF NOT EXISTS "+q(o.Table)+" ("+strings.Join(defs, ", ")+")"); err != nil {
				return err
			}
		case AddColumn:
			if err := r.addColumn(ctx, o.Table, o.Column); err != nil {
				return err
			}
		case CreateIndex:
			if err := r.im.createIndex(ctx, r, o); err != nil {
				return err
			}
		case SetNotNull:
			if s := r.im.notNull().expand(o.Table, o.Column, r.checkName(i, -1)); s != "" {
				if err := r.addConstraintOnce(ctx, o.Table, r.checkName(i, -1), s); err != nil {
					return err
				}
			}
		case AddForeignKey:
			if ok, err := r.im.constraintExists(ctx, r.db, o.Table, o.Name); err != nil || ok {
				if err != nil {
					return err
				}
				continue
			}
			def := "FOREIGN KEY (" + quoteList(r.im, o.Columns) + ") REFERENCES " + q(o.RefTable) + " (" + quoteList(r.im, o.RefColumns) + ")"
			if err := r.im.foreignKey().add(ctx, r, o.Table, o.Name, def); err != nil {
				return err
			}
		case RawSQL:
			if !o.Contract {
				if err := r.execRaw(ctx, o.Up); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// op returns the plan of operation i if it is a Transform.
func (p *prepared) op(i int) *opPlan {
	for _, o := range p.ops {
		if o.op == i {
			return o
		}
	}
	return nil
}

// expandTransform adds the new columns (nullable, without default: NULL
// marks a row not yet backfilled), the unvalidated NOT NULL checks they
// carry, and then, as one unit, the triggers together with the move of the
// old columns' defaults into them. Only old code runs during Start (the
// new version is deployed after it), and old code writes only the old
// columns, which the triggers fill in from either state of the defaults.
func (r *Runner) expandTransform(ctx context.Context, op Operation, o *opPlan) (err error) {
	if o.sync == nil { // the table is created by this migration: now it exists
		cols, err := r.im.columns(ctx, r.db, o.t.Table)
		if err != nil {
			return err
		}
		o.cols = cols
		if err := r.inspect(ctx, op, o); err != nil {
			return err
		}
		if err := r.storeSaved(ctx, o.op, o.saved); err != nil {
			return err
		}
		if err := r.completeTypes(op, &o.t, o.saved.Old); err != nil {
			return err
		}
	}
	for _, c := range o.t.Add {
		if err := r.addColumn(ctx, o.t.Table, Column{Name: c.Name, Type: c.Type}); err != nil {
			return err
		}
	}
	cols, err := r.im.columns(ctx, r.db, o.t.Table)
	if err != nil {
		return err
	}
	o.cols = cols
	if o.sync, err = r.plan(o); err != nil {
		return err
	}
	// The checks go in the unit too: before the triggers exist, an old
	// writer's row would have NULL new columns and fail them.
	caps := r.im.caps()
	checks := func(ctx context.Context) ([]string, error) {
		var out []string
		if caps.notValid {
			for _, k := range o.saved.Constraints {
				if k.Incoming {
					continue // moved at Complete
				}
				ok, err := r.im.constraintExists(ctx, r.db, o.t.Table, k.Temp)
				if err != nil {
					return nil, err
				}
				if !ok {
					out = append(out, "ALTER TABLE "+r.d.quote(o.t.Table)+" ADD CONSTRAINT "+r.d.quote(k.Temp)+" "+k.Def+" NOT VALID")
				}
			}
		}
		nn := r.im.notNull()
		for j, c := range o.saved.New {
			if !c.NotNull || !nn.supported {
				continue
			}
			s := nn.expand(o.t.Table, c.Name, r.checkName(o.op, j))
			if s == "" {
				continue
			}
			ok, err := r.im.constraintExists(ctx, r.db, o.t.Table, r.checkName(o.op, j))
			if err != nil {
				return nil, err
			}
			if !ok {
				out = append(out, s)
			}
		}
		return out, nil
	}
	if !caps.notValid {
		// Foreign keys added with checks off; Backfill looks for orphans.
		defer func() {
			for _, k := range o.saved.Constraints {
				if err != nil || k.Incoming {
					continue
				}
				var ok bool
				if ok, err = r.im.constraintExists(ctx, r.db, o.t.Table, k.Temp); err == nil && !ok {
					err = r.im.foreignKey().add(ctx, r, o.t.Table, k.Temp, k.Def)
				}
			}
		}()
	}
	if o.t.Sync == SyncApplication {
		return r.execUnit(ctx, o.t.Table, checks)
	}
	return r.execUnit(ctx, o.t.Table, func(ctx context.Context) ([]string, error) {
		stmts := r.im.createTriggers(r.trigName(o.op), r.t, o.sync)
		cs, err := checks(ctx)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, cs...)
		for _, c := range o.saved.Old {
			set := colAttrs{}
			if c.Default != "" {
				none := ""
				set.Default = &none
			}
			if c.NotNull && r.movesNotNull() {
				f := false
				set.NotNull = &f
			}
			if set.Default == nil && set.NotNull == nil {
				continue
			}
			s, err := r.im.columnAttrs(o.t.Table, c, set)
			if err != nil {
				return nil, err
			}
			stmts = append(stmts, s...)
		}
		return stmts, nil
	})
}

// execUnit runs the statements build returns as one unit (see
// dialect.unit) on a DDL connection, with the lock timeout and retries of
// every DDL statement; build runs again before each attempt, so that it
// can look at what a failed attempt left.
func (r *Runner) execUnit(ctx context.Context, table string, build func(context.Context) ([]string, error)) error {
	var desc string
	return r.withDDLConn(ctx, "unit on "+table, func(ctx context.Context, c *sql.Conn) error {
		stmts, err := build(ctx)
		if err != nil || len(stmts) == 0 {
			return err
		}
		desc = strings.Join(stmts, ";\n")
		r.log.DebugContext(ctx, "migrate: ddl unit", "migration", r.m.Name, "statements", desc)
		return r.im.unit(ctx, c, table, stmts)
	})
}

// columnDef is a column's definition as AddColumn and CreateTable give it.
func (r *Runner) columnDef(c Column) string {
	s := r.d.quote(c.Name) + " " + c.Type
	if c.NotNull {
		s += " NOT NULL"
	}
	if c.Default != "" {
		lit, _ := constantSQL(r.d, c.Default) // Validate refused any other
		s += " DEFAULT " + lit
	}
	return s
}

func (r *Runner) hasColumn(ctx context.Context, table, col string) (bool, error) {
	cols, err := r.im.columns(ctx, r.db, table)
	if err != nil {
		return false, err
	}
	_, ok := r.colNamed(cols, col)
	return ok, nil
}

func (r *Runner) addColumn(ctx context.Context, table string, c Column) error {
	ok, err := r.hasColumn(ctx, table, c.Name)
	if err != nil || ok {
		return err
	}
	return r.execAlt(ctx, r.im.alter(table, "ADD COLUMN "+r.columnDef(c)))
}

func (r *Runner) dropColumn(ctx context.Context, table, col string) error {
	if ok, err := r.im.tableExists(ctx, r.db, table); err != nil || !ok {
		return err
	}
	ok, err := r.hasColumn(ctx, table, col)
	if err != nil || !ok {
		return err
	}
	return r.execAlt(ctx, r.im.alter(table, "DROP COLUMN "+r.d.quote(col)))
}

// checkName is the name of the NOT VALID check constraint of SetNotNull
// operation i (j < 0), or of the j-th new column of Transform i.
func (r *Runner) checkName(i, j int) string {
	if j < 0 {
		return fmt.Sprintf("baton_nn_%s_%d", r.m.Name, i)
	}
	return fmt.Sprintf("baton_nn_%s_%d_%d", r.m.Name, i, j)
}

func (r *Runner) execRaw(ctx context.Context, text string) error {
	for _, s := range splitStatements(r.d, text) {
		if err := r.execDDL(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) addConstraintOnce(ctx context.Context, table, name, stmt string) error {
	ok, err := r.im.constraintExists(ctx, r.db, table, name)
	if err != nil || ok {
		return err
	}
	return r.execDDL(ctx, stmt)
}

// quoteList quotes and joins column names.
func quoteList(d dialect, cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = d.quote(c)
	}
	return strings.Join(q, ", ")
}
