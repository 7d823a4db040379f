package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// sqliteDialect is SQLite 3.35 or later.
type sqliteDialect struct{}

func (sqliteDialect) name() Dialect { return SQLite }

func (sqliteDialect) quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func (sqliteDialect) param(int) string { return "?" }

func (sqliteDialect) lex() lexRules { return lexRules{backticks: true, brackets: true} }

func (sqliteDialect) caps() capabilities {
	return capabilities{rowValues: true, transactional: true, rebuildsUnique: true, volatile: []string{"RANDOM", "RANDOMBLOB"}}
}

func (sqliteDialect) nowMS() string {
	return "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
}

func (sqliteDialect) textType() string { return "TEXT" }

func (d sqliteDialect) upsert(table string, cols, vals, key, update []string) string {
	return onConflictUpsert(table, cols, vals, key, update)
}

// extraStateDDL: the lease table of the runner lock and the trigger guard
// (see createTriggers).
func (sqliteDialect) extraStateDDL(t tables) []string {
	return []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_ms INTEGER NOT NULL)`, t.locks),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (x INTEGER)`, t.guard),
	}
}

// lockTimeout sets busy_timeout and remembers the pool connection's own
// (from the DSN) to restore it: RESET does not exist for pragmas.
func (sqliteDialect) lockTimeout(ctx context.Context, c *sql.Conn, t time.Duration) (func(context.Context) error, error) {
	var busy int64
	if err := c.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
		return nil, fmt.Errorf("migrate: read busy timeout: %w", err)
	}
	if _, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", max(t.Milliseconds(), 1))); err != nil {
		return nil, fmt.Errorf("migrate: set lock timeout: %w", err)
	}
	return func(ctx context.Context) error {
		_, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", busy))
		return err
	}, nil
}

func (sqliteDialect) retryable(err error) bool {
	var c coder
	if errors.As(err, &c) {
		switch c.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return true
		}
	}
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY")
}

func (sqliteDialect) columns(ctx context.Context, q queryer, table string) ([]colInfo, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, type, "notnull" <> 0, pk, dflt_value, hidden IN (2, 3), NULL FROM pragma_table_xinfo(?) WHERE hidden <> 1 ORDER BY cid`, table)
	return scanColumns(rows, table, err)
}

func (sqliteDialect) indexes(ctx context.Context, q queryer, table string) ([]indexInfo, error) {
	rows, err := q.QueryContext(ctx, `SELECT l.name, l."unique" <> 0, l.origin = 'pk', l.origin = 'u',
		l.partial = 0 AND NOT EXISTS (SELECT 1 FROM pragma_index_info(l.name) WHERE cid < 0),
		COALESCE((SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_index_info(l.name) ORDER BY seqno)), '')
		FROM pragma_index_list(?) l ORDER BY l.name`, table)
	return scanIndexes(rows, table, err)
}

// constraints lists foreign keys from and to the column (PRAGMA
// foreign_key_list of every table) and CHECK clauses of the table's
// definition that name it.
func (sqliteDialect) constraints(ctx context.Context, q queryer, table, col string) ([]constraintInfo, error) {
	rows, err := q.QueryContext(ctx, `SELECT 'fk_' || f.id, 'FOREIGN KEY', m.name, f."from" || ' -> ' || f."table" || '.' || COALESCE(f."to", '')
		FROM sqlite_master m, pragma_foreign_key_list(m.name) f
		WHERE m.type = 'table' AND ((m.name = ? AND f."from" = ? COLLATE NOCASE) OR (f."table" = ? COLLATE NOCASE AND f."to" = ? COLLATE NOCASE))`, table, col, table, col)
	out, err := scanConstraints(rows, table, err)
	if err != nil {
		return nil, err
	}
	def, err := tableSQL(ctx, q, table)
	if err != nil {
		return nil, err
	}
	toks := tokenize(SQLite, def)
	for i, t := range toks {
		if t.upper() != "CHECK" || i+1 >= len(toks) || toks[i+1].text != "(" {
			continue
		}
		end := matchParen(toks, i+1)
		if clause := def[toks[i+1].start:toks[end].end]; namesColumn(SQLite, clause, col) {
			out = append(out, constraintInfo{Name: "check", Kind: "CHECK", Table: table, Def: clause})
		}
	}
	return out, nil
}

// carryConstraint: SQLite cannot add a constraint to an existing table.
func (sqliteDialect) carryConstraint(constraintInfo, string, string) (string, bool) { return "", false }

func (sqliteDialect) renameConstraint(string, string, string) []string { return nil }

func (sqliteDialect) referencing(ctx context.Context, q queryer, table string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT DISTINCT m.name FROM sqlite_master m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table' AND f."table" = ? COLLATE NOCASE AND m.name <> ? ORDER BY 1`, table, table)
	return scanAll(rows, err, "references", table, func(rows *sql.Rows) (string, error) {
		var s string
		return s, rows.Scan(&s)
	})
}

// rebuildDrop starts a statement of a unit that drops a column with a
// UNIQUE constraint by rebuilding the table (see rebuildWithout); the rest
// is the table and the column, NUL-separated.
const rebuildDrop = "\x00rebuild\x00"

// dropColumn drops in place, or, for a column with a UNIQUE constraint of
// its own (which SQLite cannot drop), by rebuilding the table.
func (d sqliteDialect) dropColumn(table, col string, rebuild bool) string {
	if rebuild {
		return rebuildDrop + table + "\x00" + col
	}
	return "ALTER TABLE " + d.quote(table) + " DROP COLUMN " + d.quote(col)
}

// tableConstraint are the words that start a table constraint in CREATE
// TABLE.
var tableConstraint = map[string]bool{"CONSTRAINT": true, "PRIMARY": true, "UNIQUE": true, "CHECK": true, "FOREIGN": true}

func (sqliteDialect) tableExists(ctx context.Context, q queryer, table string) (bool, error) {
	return count(ctx, q, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table)
}

func (sqliteDialect) constraintExists(context.Context, queryer, string, string) (bool, error) {
	return false, nil
}

// session is a lease row written under SQLite's writer lock and renewed
// every LeaseTTL/3; holding the writer lock itself for a whole backfill
// would stop every application write, so a killed runner's lease instead
// expires after LeaseTTL. Expiry is on the database's clock.
func (d sqliteDialect) session(ctx context.Context, l *lockEnv) (*heldLock, bool, error) {
	owner := randomID()
	ttl := l.ttl.Milliseconds()
	res, err := l.db.ExecContext(ctx, `INSERT INTO `+l.t.locks+` (name, owner, expires_ms) VALUES (?, ?, `+d.nowMS()+` + ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_ms = excluded.expires_ms WHERE `+l.t.locks+`.expires_ms < `+d.nowMS(),
		l.key, owner, ttl)
	if err != nil {
		if d.retryable(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, false, nil
	}
	renew := `UPDATE ` + l.t.locks + ` SET expires_ms = ` + d.nowMS() + ` + ? WHERE name = ? AND owner = ?`
	h := watchLease(l, l.ttl/3, func(ctx context.Context) (bool, error) {
		res, err := l.db.ExecContext(ctx, renew, ttl, l.key, owner)
		if err != nil {
			return true, err // busy: try again next tick, the lease has slack
		}
		n, _ := res.RowsAffected()
		return n == 1, nil
	}, func(ctx context.Context) {
		_, _ = l.db.ExecContext(ctx, `DELETE FROM `+l.t.locks+` WHERE name = ? AND owner = ?`, l.key, owner)
	})
	h.cond = `EXISTS (SELECT 1 FROM ` + l.t.locks + ` WHERE name = ? AND owner = ?)`
	h.args = []any{l.key, owner}
	return h, true, nil
}

func (d sqliteDialect) alter(table, clause string) []string {
	return []string{"ALTER TABLE " + d.quote(table) + " " + clause}
}

// schemaEdit starts a statement of a unit that rewrites one column's
// definition in the table's CREATE TABLE text (see columnAttrs); the rest
// is the table, the column and the attributes, NUL-separated.
const schemaEdit = "\x00edit\x00"

// unit runs stmts in one BEGIN IMMEDIATE transaction (SQLite's DDL is
// transactional). A column edit reads the table's definition inside the
// transaction, rewrites it with writable_schema on (adding NOT NULL only
// if no row has NULL there), and bumps schema_version so that every
// connection reloads the schema: the procedure SQLite documents for
// changing defaults and NOT NULL without rebuilding the table.
func (d sqliteDialect) unit(ctx context.Context, c *sql.Conn, _ string, stmts []string) error {
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	err := func() error {
		edits := false
		for _, s := range stmts {
			if strings.HasPrefix(s, rebuildDrop) {
				if err := d.rebuildWithout(ctx, c, strings.TrimPrefix(s, rebuildDrop)); err != nil {
					return err
				}
				continue
			}
			if !strings.HasPrefix(s, schemaEdit) {
				if _, err := c.ExecContext(ctx, s); err != nil {
					return fmt.Errorf("%w; statement: %s", err, oneLine(s))
				}
				continue
			}
			if !edits {
				if _, err := c.ExecContext(ctx, "PRAGMA writable_schema = ON"); err != nil {
					return err
				}
				edits = true
			}
			if err := d.editColumn(ctx, c, strings.TrimPrefix(s, schemaEdit)); err != nil {
				return err
			}
		}
		if !edits {
			return nil
		}
		var v int64
		if err := c.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&v); err != nil {
			return err
		}
		return execAll(ctx, c, []string{fmt.Sprintf("PRAGMA schema_version = %d", v+1), "PRAGMA writable_schema = OFF"})
	}()
	if err != nil {
		_, _ = c.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return err
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = c.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return err
	}
	return nil
}

func (d sqliteDialect) createIndex(ctx context.Context, x ddlExec, ix CreateIndex) error {
	uniq := ""
	if ix.Unique {
		uniq = "UNIQUE "
	}
	return x.execDDL(ctx, "CREATE "+uniq+"INDEX IF NOT EXISTS "+d.quote(ix.Name)+" ON "+d.quote(ix.Table)+" ("+quoteList(d, ix.Columns)+")")
}

func (d sqliteDialect) dropIndex(_, name string, _ bool) string {
	return "DROP INDEX IF EXISTS " + d.quote(name)
}

// renameIndex: SQLite cannot rename an index; a carried index keeps its
// own name.
func (sqliteDialect) renameIndex(string, string, string) []string { return nil }

func (sqliteDialect) autoIncrement(string) string { return "" }

func (sqliteDialect) notNull() notNullSteps       { return notNullSteps{} }
func (sqliteDialect) foreignKey() foreignKeySteps { return foreignKeySteps{} }
func (sqliteDialect) distinct(a, b string) string { return a + " IS NOT " + b }

// createTriggers: SQLite cannot assign NEW in a BEFORE trigger, so one
// AFTER INSERT and one AFTER UPDATE trigger UPDATE the row by its key.
// recursive_triggers is off by default, but the UPDATE issued by the
// INSERT trigger would still fire the UPDATE trigger; each trigger
// therefore marks its own write in the guard table (insert, update,
// delete within the trigger) and neither fires while the mark exists.
// SQLite has one writer at a time and the mark never commits, so it is
// private to the statement. Old columns whose NOT NULL Start moved into
// the trigger are checked last, with SQLite's own message.
func (d sqliteDialect) createTriggers(name func(string) string, t tables, p *syncPlan) []string {
	q := d.quote
	tbl := q(p.table)
	rule := p.rule(d)
	where := " WHERE " + keyMatch(d, p.key, "NEW.")
	set := func(cols []string, exprs map[string]string) string {
		parts := make([]string, len(cols))
		for i, c := range cols {
			parts[i] = q(c) + " = " + exprs[c]
		}
		return strings.Join(parts, ", ")
	}
	var fill []string
	for _, c := range sortedKeys(rule.defaults) {
		fill = append(fill, q(c)+" = COALESCE("+q(c)+", "+rule.defaults[c]+")")
	}
	var check string
	if len(p.enforceNotNull) > 0 {
		nulls := make([]string, len(p.enforceNotNull))
		for i, c := range p.enforceNotNull {
			nulls[i] = q(c) + " IS NULL"
		}
		check = fmt.Sprintf("\n  SELECT RAISE(ABORT, %s) FROM %s%s AND (%s);", quoteString(d.lex(), "NOT NULL constraint failed: "+p.table+"."+strings.Join(p.enforceNotNull, ", ")),
			tbl, where, strings.Join(nulls, " OR "))
	}
	mk := func(suffix, event string, steps []string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "CREATE TRIGGER IF NOT EXISTS %s AFTER %s ON %s WHEN NOT EXISTS (SELECT 1 FROM %s) BEGIN\n  INSERT INTO %s (x) VALUES (1);", q(name(suffix)), event, tbl, t.guard, t.guard)
		for _, s := range steps {
			b.WriteString("\n  " + s + ";")
		}
		fmt.Fprintf(&b, "%s\n  DELETE FROM %s;\nEND", check, t.guard)
		return b.String()
	}
	var ins []string
	if len(fill) > 0 {
		ins = append(ins, "UPDATE "+tbl+" SET "+strings.Join(fill, ", ")+where+" AND "+rule.insNewUnwritten)
	}
	ins = append(ins,
		"UPDATE "+tbl+" SET "+set(p.newCols, p.upTable)+where+" AND "+rule.insNewUnwritten,
		"UPDATE "+tbl+" SET "+set(p.oldCols, p.downTable)+where+" AND NOT "+rule.insNewUnwritten+" AND "+rule.insOldUnwritten)
	upd := []string{
		"UPDATE " + tbl + " SET " + set(p.newCols, p.upTable) + where + " AND " + rule.updDeriveNew,
		"UPDATE " + tbl + " SET " + set(p.oldCols, p.downTable) + where + " AND " + rule.updDeriveOld,
	}
	return []string{mk("ai", "INSERT", ins), mk("au", "UPDATE", upd)}
}

func (d sqliteDialect) dropTriggers(name func(string) string, _ string, _ bool) []string {
	var out []string
	for _, n := range []string{"ai", "au", "ai_new", "ai_old", "au_new", "au_old"} {
		out = append(out, "DROP TRIGGER IF EXISTS "+d.quote(name(n)))
	}
	return out
}

// backfillSession: the pinned connection keeps the backfill's
// busy_timeout; it is dropped instead of returned to the pool (nil restore).
func (sqliteDialect) backfillSession(context.Context, *sql.Conn) (func(context.Context) error, error) {
	return nil, nil
}

// beginBatch uses BEGIN IMMEDIATE, which takes the writer lock up front
// (waiting up to busy_timeout); a deferred transaction that reads first
// and then writes fails with SQLITE_BUSY without waiting when another
// writer committed in between.
func (sqliteDialect) beginBatch(ctx context.Context, c *sql.Conn) (batchTx, error) {
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, err
	}
	return connTx{ctx: ctx, Conn: c}, nil
}

// connTx is a transaction begun with an explicit BEGIN on a pinned
// connection.
type connTx struct {
	ctx context.Context
	*sql.Conn
}

func (t connTx) Commit() error {
	if _, err := t.ExecContext(t.ctx, "COMMIT"); err != nil {
		_ = t.Rollback()
		return err
	}
	return nil
}

func (t connTx) Rollback() error {
	_, err := t.ExecContext(context.WithoutCancel(t.ctx), "ROLLBACK")
	return err
}
