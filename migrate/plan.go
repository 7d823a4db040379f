package migrate

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// savedOp is what Start records for a Transform before its first DDL
// statement: the key its backfill walks, the old columns as they were
// (Start moves their defaults into the triggers), and what the new
// columns must carry at Complete. Complete and Rollback use it, not the
// catalog, which Start has changed.
type savedOp struct {
	Key     []string       `json:"key"`
	Old     []colInfo      `json:"old"`
	New     []carried      `json:"new"`
	Indexes []carriedIndex `json:"indexes,omitempty"`
	// Constraints are the CHECK constraints and foreign keys of the old
	// column, added for the new one NOT VALID (or, on MySQL, with checks
	// off) under the name Temp and validated after the backfill.
	Constraints []carriedConstraint `json:"constraints,omitempty"`
}

// carriedConstraint is a constraint of an old column carried to the new one.
type carriedConstraint struct {
	Name string `json:"name"`
	Temp string `json:"temp"`
	Kind string `json:"kind"`
	Def  string `json:"def"`
	// FK is the carried foreign key, for the orphan check of dialects
	// without VALIDATE.
	FK AddForeignKey `json:"fk"`
	// Incoming marks a foreign key of table Table that references the old
	// column; it is moved to the new one at Complete.
	Incoming bool   `json:"incoming,omitempty"`
	Table    string `json:"table,omitempty"`
}

// carried is what a new column becomes at Complete.
type carried struct {
	Name    string `json:"name"`
	NotNull bool   `json:"not_null,omitempty"`
	Default string `json:"default,omitempty"`
	Comment string `json:"comment,omitempty"`
}

// carriedIndex is an index of an old column rebuilt on the new one by
// Backfill (under the name Temp) and renamed to Name at Complete.
type carriedIndex struct {
	Name       string   `json:"name"`
	Temp       string   `json:"temp"`
	Columns    []string `json:"columns"`
	Unique     bool     `json:"unique,omitempty"`
	Constraint bool     `json:"constraint,omitempty"`
	// Owned marks an old index that belongs to a constraint of the old
	// column (it goes with the column, never by DROP INDEX).
	Owned bool `json:"owned,omitempty"`
}

// opPlan is one Transform resolved against the live schema.
type opPlan struct {
	op    int
	t     Transform
	saved savedOp
	have  bool // saved was read from the state table
	sync  *syncPlan
	cols  []colInfo
}

// opPlan starts the plan of operation i with what Start saved, or returns
// nil if it is not a Transform.
func (r *Runner) opPlan(ctx context.Context, i int, op Operation) (*opPlan, error) {
	t, ok, err := r.asTransform(op)
	if err != nil || !ok {
		return nil, err
	}
	o := &opPlan{op: i, t: t}
	o.have, err = r.loadSaved(ctx, i, &o.saved)
	return o, err
}

// prepared is the whole migration resolved: its Transforms, and per table
// the operations one backfill pass serves.
type prepared struct {
	ops    []*opPlan
	tables []string // in first-use order
}

func (p *prepared) onTable(table string) []*opPlan {
	var out []*opPlan
	for _, o := range p.ops {
		if o.t.Table == table {
			out = append(out, o)
		}
	}
	return out
}

// Check resolves the migration against the live schema and reports, before
// anything changes, what Start would have to refuse: a missing table or
// column, a table without a usable key for keyset batches, a generated
// column in a Transform, or a property of a renamed column that the new
// column could not carry on this dialect (each named in the error). Start
// runs it before its first DDL statement; call it early (for example right
// after New) to fail a deployment before it starts. It records nothing.
func (r *Runner) Check(ctx context.Context) error {
	_, err := r.resolve(ctx, false)
	return err
}

// prepare is Check that also records, once, what Start changes (savedOp).
func (r *Runner) prepare(ctx context.Context) (*prepared, error) {
	if err := r.ensureState(ctx); err != nil {
		return nil, err
	}
	return r.resolve(ctx, true)
}

// created reports whether the migration creates table itself (its schema is
// then known only once Start has run).
func (r *Runner) created(table string) bool {
	for _, op := range r.m.Operations {
		if ct, ok := op.(CreateTable); ok && strings.EqualFold(ct.Table, table) {
			return true
		}
	}
	return false
}

// resolve builds the plan of every Transform: from the saved payload when
// Start recorded one, else from the catalog (storing it when store is set).
func (r *Runner) resolve(ctx context.Context, store bool) (*prepared, error) {
	p := &prepared{}
	for i, op := range r.m.Operations {
		o, err := r.opPlan(ctx, i, op)
		if err != nil || o == nil {
			if err != nil {
				return nil, err
			}
			continue
		}
		t := o.t
		cols, err := r.im.columns(ctx, r.db, t.Table)
		if err != nil {
			return nil, err
		}
		o.cols = cols
		if !o.have && len(cols) == 0 && r.created(t.Table) {
			// Checked by expand once the migration has created the table.
			p.ops = append(p.ops, o)
			if !slices.Contains(p.tables, t.Table) {
				p.tables = append(p.tables, t.Table)
			}
			continue
		}
		if !o.have {
			if err := r.inspect(ctx, op, o); err != nil {
				return nil, err
			}
			if store {
				if err := r.storeSaved(ctx, i, o.saved); err != nil {
					return nil, err
				}
			}
		}
		if err := r.completeTypes(op, &o.t, o.saved.Old); err != nil {
			return nil, err
		}
		if len(cols) > 0 {
			if o.sync, err = r.plan(o); err != nil {
				return nil, err
			}
		}
		p.ops = append(p.ops, o)
		if !slices.Contains(p.tables, t.Table) {
			p.tables = append(p.tables, t.Table)
		}
	}
	return p, nil
}

// colNamed finds a column by name (case-insensitively where the dialect
// folds names).
func (r *Runner) colNamed(cols []colInfo, name string) (colInfo, bool) {
	for _, c := range cols {
		if c.Name == name || (!r.im.lex().caseSensitive && strings.EqualFold(c.Name, name)) {
			return c, true
		}
	}
	return colInfo{}, false
}

// inspect fills o.saved from the catalog, refusing what cannot be done.
func (r *Runner) inspect(ctx context.Context, op Operation, o *opPlan) error {
	t := o.t
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: migration %q, operations[%d] on table %q: %s", ErrUnsupported, r.m.Name, o.op, t.Table, fmt.Sprintf(format, args...))
	}
	if len(o.cols) == 0 {
		return fmt.Errorf("%w: migration %q, operations[%d]: table %q does not exist", ErrInvalid, r.m.Name, o.op, t.Table)
	}
	ixs, err := r.im.indexes(ctx, r.db, t.Table)
	if err != nil {
		return err
	}
	key, err := r.chooseKey(t, o.cols, ixs)
	if err != nil {
		return fail("%v", err)
	}
	o.saved.Key = key
	for _, name := range sortedKeys(t.Down) {
		c, ok := r.colNamed(o.cols, name)
		if !ok {
			return fmt.Errorf("%w: migration %q, operations[%d]: column %q of table %q does not exist", ErrInvalid, r.m.Name, o.op, name, t.Table)
		}
		if c.Generated {
			return fail("column %q is a generated column: it cannot be written, so nothing can keep it in sync", c.Name)
		}
		if c.PK > 0 && slices.Contains(t.Drop, name) {
			return fail("column %q is part of the primary key: dropping it would change the table's identity", c.Name)
		}
		o.saved.Old = append(o.saved.Old, c)
	}
	defs, err := r.im.columnDefs(ctx, r.db, t.Table)
	if err != nil {
		return err
	}
	for i := range o.saved.Old {
		o.saved.Old[i].Def = defs[strings.ToLower(o.saved.Old[i].Name)]
	}
	for _, e := range t.Up {
		for _, c := range o.cols {
			if c.Generated && namesColumn(r.d, e.For(r.d), c.Name) {
				return fail("an up expression reads generated column %q, which a BEFORE trigger sees before it is computed", c.Name)
			}
		}
	}
	for _, c := range t.Add {
		lit := ""
		if c.Default != "" {
			lit, _ = constantSQL(r.d, c.Default) // Validate refused any other
		}
		o.saved.New = append(o.saved.New, carried{Name: c.Name, NotNull: c.NotNull, Default: lit})
	}
	from, to, ok := renamed(op)
	if !ok {
		return nil
	}
	// A renamed or retyped column's new column carries what the old one
	// promised; what cannot be carried is refused here, before any DDL.
	old, _ := r.colNamed(o.cols, from)
	o.saved.New[0] = carried{Name: to, NotNull: old.NotNull, Default: old.Default, Comment: old.Comment}
	for _, ix := range ixs {
		if !slices.ContainsFunc(ix.Columns, func(c string) bool { return strings.EqualFold(c, from) }) {
			continue
		}
		if ix.Primary {
			return fail("column %q is part of the primary key", from)
		}
		if !ix.Plain {
			return fail("index %q on column %q is partial, on an expression or on a prefix: it would be lost; drop it first and recreate it on %q afterwards", ix.Name, from, to)
		}
		if ix.Constraint && !r.im.caps().dropsUnique {
			if !r.im.caps().rebuildsUnique || len(ix.Columns) != 1 {
				return fail("column %q has a UNIQUE constraint over (%s), which %s cannot drop in place; replace it by a unique index (CREATE UNIQUE INDEX) first", from, strings.Join(ix.Columns, ", "), r.d)
			}
			refs, err := r.im.referencing(ctx, r.db, t.Table)
			if err != nil {
				return err
			}
			if len(refs) > 0 {
				return fail("column %q has a UNIQUE constraint, which SQLite drops by rebuilding the table, and table %q references this one; replace the constraint by a unique index (CREATE UNIQUE INDEX) first", from, refs[0])
			}
		}
		cols := make([]string, len(ix.Columns))
		for j, c := range ix.Columns {
			cols[j] = c
			if strings.EqualFold(c, from) {
				cols[j] = to
			}
		}
		o.saved.Indexes = append(o.saved.Indexes, carriedIndex{Name: ix.Name, Temp: fmt.Sprintf("baton_%s_%d_%d", r.m.Name, o.op, len(o.saved.Indexes)),
			Columns: cols, Unique: ix.Unique, Constraint: ix.Constraint && r.im.caps().uniqueUsing, Owned: ix.Constraint})
	}
	ks, err := r.im.constraints(ctx, r.db, t.Table, from)
	if err != nil {
		return err
	}
	for j, k := range ks {
		def, ok := r.im.carryConstraint(k, from, to)
		if !ok {
			what := "cannot be carried on " + r.d.String()
			if k.Incoming {
				what = "references it from table " + k.Table + ", which cannot be carried on " + r.d.String()
			}
			return fail("%s constraint %q (%s) %s and would be lost: drop it first and add it for %q afterwards (AddForeignKey, RawSQL)", k.Kind, k.Name, oneLine(k.Def), what, to)
		}
		if k.Incoming && !slices.ContainsFunc(o.saved.Indexes, func(ix carriedIndex) bool { return ix.Unique && len(ix.Columns) == 1 }) && len(k.FK.RefColumns) <= 1 {
			return fail("%s constraint %q of table %q references column %q, and %q would have no unique index to reference", k.Kind, k.Name, k.Table, from, to)
		}
		c := carriedConstraint{Name: k.Name, Temp: fmt.Sprintf("baton_%s_%d_k%d", r.m.Name, o.op, j), Kind: k.Kind, Def: def, FK: k.FK, Incoming: k.Incoming, Table: k.Table}
		if k.Incoming {
			// A reference into the table moves at Complete, under its own
			// name, when the new column has its unique index.
			o.saved.Constraints = append(o.saved.Constraints, c)
			continue
		}
		c.FK.Name = c.Temp
		for i, col := range c.FK.Columns {
			if strings.EqualFold(col, from) {
				c.FK.Columns[i] = to
			}
		}
		o.saved.Constraints = append(o.saved.Constraints, c)
	}
	if old.Comment != "" && !r.im.caps().comments {
		return fail("column %q has a comment, which SQLite cannot store", from)
	}
	return nil
}

// renamed returns the old and new column of a RenameColumn or ChangeType.
func renamed(op Operation) (from, to string, ok bool) {
	switch o := op.(type) {
	case RenameColumn:
		return o.From, o.To, true
	case ChangeType:
		return o.Column, o.To, true
	}
	return "", "", false
}

// chooseKey picks the key a backfill walks: Transform.Key if set (it must
// be the primary key or a UNIQUE key of NOT NULL columns), else the
// primary key, else the first such UNIQUE key.
func (r *Runner) chooseKey(t Transform, cols []colInfo, ixs []indexInfo) ([]string, error) {
	notNull := func(names []string) bool {
		for _, n := range names {
			c, ok := r.colNamed(cols, n)
			if !ok || !c.NotNull && c.PK == 0 {
				return false
			}
		}
		return true
	}
	var pk []string
	for _, c := range cols {
		if c.PK > 0 {
			pk = append(pk, "")
		}
	}
	for _, c := range cols {
		if c.PK > 0 {
			pk[c.PK-1] = c.Name
		}
	}
	same := func(a, b []string) bool {
		return slices.EqualFunc(a, b, func(x, y string) bool { return x == y || (!r.im.lex().caseSensitive && strings.EqualFold(x, y)) })
	}
	if len(t.Key) > 0 {
		if same(t.Key, pk) {
			return pk, nil
		}
		for _, ix := range ixs {
			if ix.Unique && ix.Plain && same(t.Key, ix.Columns) && notNull(ix.Columns) {
				return ix.Columns, nil
			}
		}
		return nil, fmt.Errorf("key (%s) is neither the primary key nor a UNIQUE key of NOT NULL columns", strings.Join(t.Key, ", "))
	}
	if len(pk) > 0 {
		return pk, nil
	}
	for _, ix := range ixs {
		if ix.Unique && ix.Plain && notNull(ix.Columns) {
			return ix.Columns, nil
		}
	}
	return nil, fmt.Errorf("the table has no primary key and no UNIQUE key of NOT NULL columns, which keyset batches need; add one (CreateIndex with Unique) or name one in the operation's Key")
}

// asTransform turns RenameColumn and ChangeType into the Transform they
// stand for. Without a type given, RenameColumn's new column has the old
// one's type and ChangeType's Down casts to it; both are read from the
// catalog when needed.
func (r *Runner) asTransform(op Operation) (Transform, bool, error) {
	q := r.d.quote
	switch o := op.(type) {
	case Transform:
		return o, true, nil
	case RenameColumn:
		return Transform{
			Table: o.Table,
			Key:   o.Key,
			Add:   []Column{{Name: o.To, Type: o.Type}},
			Up:    map[string]Expr{o.To: {SQL: q(o.From)}},
			Down:  map[string]Expr{o.From: {SQL: q(o.To)}},
			Drop:  []string{o.From},
		}, true, nil
	case ChangeType:
		up, down := o.Up, o.Down
		if up.For(r.d) == "" {
			up = Expr{SQL: "CAST(" + q(o.Column) + " AS " + o.Type + ")"}
		}
		return Transform{
			Table: o.Table,
			Key:   o.Key,
			Add:   []Column{{Name: o.To, Type: o.Type}},
			Up:    map[string]Expr{o.To: up},
			Down:  map[string]Expr{o.Column: down},
			Drop:  []string{o.Column},
		}, true, nil
	}
	return Transform{}, false, nil
}

// completeTypes fills what asTransform left to the catalog: RenameColumn's
// type and ChangeType's cast back.
func (r *Runner) completeTypes(op Operation, t *Transform, cols []colInfo) error {
	switch o := op.(type) {
	case RenameColumn:
		if t.Add[0].Type == "" {
			c, ok := r.colNamed(cols, o.From)
			if !ok {
				return fmt.Errorf("%w: migration %q: column %q of table %q does not exist", ErrInvalid, r.m.Name, o.From, o.Table)
			}
			t.Add[0].Type = c.Type
		}
	case ChangeType:
		if t.Down[o.Column].For(r.d) == "" {
			c, ok := r.colNamed(cols, o.Column)
			if !ok {
				return fmt.Errorf("%w: migration %q: column %q of table %q does not exist", ErrInvalid, r.m.Name, o.Column, o.Table)
			}
			t.Down[o.Column] = Expr{SQL: "CAST(" + r.d.quote(o.To) + " AS " + c.Type + ")"}
		}
	}
	return nil
}
