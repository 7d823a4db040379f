package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// postgresDialect is PostgreSQL 14 or later.
type postgresDialect struct{}

func (postgresDialect) name() Dialect { return PostgreSQL }

func (postgresDialect) quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func (postgresDialect) param(n int) string { return "$" + strconv.Itoa(n) }

func (postgresDialect) lex() lexRules {
	return lexRules{escapeStrings: true, dollarQuotes: true, caseSensitive: true}
}

func (postgresDialect) caps() capabilities {
	return capabilities{concurrentIndex: true, notValid: true, uniqueUsing: true, checkNotValid: true, rowValues: true, setBased: true, lateNotNull: true, comments: true, dropsUnique: true, transactional: true,
		volatile: []string{"RANDOM", "GEN_RANDOM_UUID", "UUID_GENERATE_V1", "UUID_GENERATE_V4", "CLOCK_TIMESTAMP", "TIMEOFDAY", "NEXTVAL", "STATEMENT_TIMESTAMP", "TXID_CURRENT"}}
}

func (postgresDialect) nowMS() string {
	return "CAST(floor(extract(epoch FROM clock_timestamp()) * 1000) AS BIGINT)"
}

func (postgresDialect) textType() string { return "TEXT" }

func (d postgresDialect) upsert(table string, cols, vals, key, update []string) string {
	return onConflictUpsert(table, cols, vals, key, update)
}

// onConflictUpsert is INSERT ... ON CONFLICT DO UPDATE (PostgreSQL and SQLite).
func onConflictUpsert(table string, cols, vals, key, update []string) string {
	set := make([]string, len(update))
	for i, c := range update {
		set[i] = c + " = excluded." + c
	}
	return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(vals, ", ") + ") ON CONFLICT (" + strings.Join(key, ", ") + ") DO UPDATE SET " + strings.Join(set, ", ")
}

func (postgresDialect) extraStateDDL(tables) []string { return nil }

func (postgresDialect) lockTimeout(ctx context.Context, c *sql.Conn, t time.Duration) (func(context.Context) error, error) {
	if _, err := c.ExecContext(ctx, fmt.Sprintf("SET lock_timeout = %d", max(t.Milliseconds(), 1))); err != nil {
		return nil, fmt.Errorf("migrate: set lock timeout: %w", err)
	}
	return func(ctx context.Context) error {
		_, err := c.ExecContext(ctx, "RESET lock_timeout")
		return err
	}, nil
}

func (postgresDialect) retryable(err error) bool {
	var s sqlStater
	if errors.As(err, &s) {
		switch s.SQLState() {
		case "55P03", "40P01", "40001": // lock_not_available, deadlock, serialization
			return true
		}
	}
	return false
}

func (d postgresDialect) columns(ctx context.Context, q queryer, table string) ([]colInfo, error) {
	rows, err := q.QueryContext(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
		COALESCE((SELECT k.n FROM pg_index i, unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n) WHERE i.indrelid = a.attrelid AND i.indisprimary AND k.attnum = a.attnum), 0),
		CASE WHEN a.attgenerated = '' AND a.attidentity = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
		a.attgenerated <> '', col_description(a.attrelid, a.attnum)
		FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, d.quote(table))
	return scanColumns(rows, table, err)
}

func (d postgresDialect) indexes(ctx context.Context, q queryer, table string) ([]indexInfo, error) {
	rows, err := q.QueryContext(ctx, `SELECT c.relname, i.indisunique, i.indisprimary,
		EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype = 'u'),
		i.indexprs IS NULL AND i.indpred IS NULL,
		COALESCE((SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum), '')
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass($1) ORDER BY c.relname`, d.quote(table))
	return scanIndexes(rows, table, err)
}

// scanIndexes reads rows of (name, unique, primary, constraint, plain,
// comma-separated columns).
func scanIndexes(rows *sql.Rows, table string, err error) ([]indexInfo, error) {
	return scanAll(rows, err, "indexes", table, func(rows *sql.Rows) (indexInfo, error) {
		var ix indexInfo
		var cols string
		err := rows.Scan(&ix.Name, &ix.Unique, &ix.Primary, &ix.Constraint, &ix.Plain, &cols)
		if cols != "" {
			ix.Columns = strings.Split(cols, ",")
		}
		return ix, err
	})
}

func (d postgresDialect) constraints(ctx context.Context, q queryer, table, col string) ([]constraintInfo, error) {
	rows, err := q.QueryContext(ctx, `WITH c AS (SELECT attnum FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2)
		SELECT k.conname, CASE k.contype WHEN 'c' THEN 'CHECK' ELSE 'FOREIGN KEY' END, k.conrelid::regclass::text, pg_get_constraintdef(k.oid),
		COALESCE(k.confrelid = to_regclass($1) AND (SELECT attnum FROM c) = ANY(k.confkey), false)
		FROM pg_constraint k WHERE k.contype IN ('c', 'f') AND (
			(k.conrelid = to_regclass($1) AND (SELECT attnum FROM c) = ANY(k.conkey))
			OR (k.confrelid = to_regclass($1) AND (SELECT attnum FROM c) = ANY(k.confkey)))
		ORDER BY k.conname`, d.quote(table), col)
	return scanAll(rows, err, "constraints", table, func(rows *sql.Rows) (constraintInfo, error) {
		var k constraintInfo
		err := rows.Scan(&k.Name, &k.Kind, &k.Table, &k.Def, &k.Incoming)
		return k, err
	})
}

// carryConstraint rewrites the catalog's own definition: in a CHECK every
// reference to from, in a foreign key the columns before REFERENCES.
func (d postgresDialect) carryConstraint(k constraintInfo, from, to string) (string, bool) {
	repl := func(s string) string {
		return rewriteColumns(PostgreSQL, s, map[string]string{from: from}, func(string) string { return d.quote(to) })
	}
	if k.Incoming {
		// The referenced columns: the parenthesised list after the table.
		i := strings.Index(k.Def, " REFERENCES ")
		if i < 0 {
			return "", false
		}
		j := strings.Index(k.Def[i:], "(")
		e := strings.Index(k.Def[i:], ")")
		if j < 0 || e < j {
			return "", false
		}
		j, e = i+j, i+e
		return k.Def[:j] + repl(k.Def[j:e]) + k.Def[e:], true
	}
	def, rest := k.Def, ""
	if k.Kind == "FOREIGN KEY" {
		i := strings.Index(def, " REFERENCES ")
		if i < 0 {
			return "", false
		}
		def, rest = def[:i], def[i:]
	}
	return repl(def) + rest, true
}

func (postgresDialect) columnDefs(context.Context, queryer, string) (map[string]string, error) {
	return nil, nil
}

func (d postgresDialect) referencing(ctx context.Context, q queryer, table string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT DISTINCT conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' AND confrelid = to_regclass($1) ORDER BY 1`, d.quote(table))
	return scanAll(rows, err, "references", table, func(rows *sql.Rows) (string, error) {
		var s string
		return s, rows.Scan(&s)
	})
}

func (d postgresDialect) dropColumn(table, col string, _ bool) string {
	return "ALTER TABLE " + d.quote(table) + " DROP COLUMN " + d.quote(col)
}

func (d postgresDialect) renameConstraint(table, from, to string) []string {
	return []string{"ALTER TABLE " + d.quote(table) + " RENAME CONSTRAINT " + d.quote(from) + " TO " + d.quote(to)}
}

// scanConstraints reads rows of (name, kind, table, definition).
func scanConstraints(rows *sql.Rows, table string, err error) ([]constraintInfo, error) {
	return scanAll(rows, err, "constraints", table, func(rows *sql.Rows) (constraintInfo, error) {
		var k constraintInfo
		err := rows.Scan(&k.Name, &k.Kind, &k.Table, &k.Def)
		return k, err
	})
}

func (d postgresDialect) tableExists(ctx context.Context, q queryer, table string) (bool, error) {
	return count(ctx, q, `SELECT count(*) FROM pg_class WHERE oid = to_regclass($1)`, d.quote(table))
}

func (d postgresDialect) constraintExists(ctx context.Context, q queryer, table, name string) (bool, error) {
	return count(ctx, q, `SELECT count(*) FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2`, d.quote(table), name)
}

// session takes a session advisory lock on a pinned connection. While it
// is held, the condition it returns (true only while that backend holds
// that advisory lock, as pg_locks shows) lets any connection confirm it.
// pg_locks alone is read: joining pg_stat_activity to tell a reused pid
// apart cost each batch several milliseconds under load, and a new backend
// would need both the dead one's pid and this very lock.
func (postgresDialect) session(ctx context.Context, l *lockEnv) (*heldLock, bool, error) {
	c, err := l.db.Conn(ctx)
	if err != nil {
		return nil, false, err
	}
	var ok bool
	var pid int64
	err = c.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(hashtext($1)), pg_backend_pid()`, l.key).Scan(&ok, &pid)
	if err != nil || !ok {
		_ = c.Close()
		return nil, false, err
	}
	h := watchSession(l, c, "SELECT 1", `SELECT pg_advisory_unlock(hashtext($1))`)
	h.cond = `EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = ? AND objid::bigint = (hashtext(?)::bigint & 4294967295))`
	h.args = []any{pid, l.key}
	return h, true, nil
}

func (d postgresDialect) alter(table, clause string) []string {
	return []string{"ALTER TABLE " + d.quote(table) + " " + clause}
}

// unit runs stmts in one transaction: PostgreSQL's DDL is transactional,
// so a concurrent statement sees all of them or none.
func (postgresDialect) unit(ctx context.Context, c *sql.Conn, _ string, stmts []string) error {
	return txUnit(ctx, c, stmts)
}

// txUnit runs stmts in one transaction on c.
func txUnit(ctx context.Context, c *sql.Conn, stmts []string) error {
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := execAll(ctx, tx, stmts); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (d postgresDialect) createIndex(ctx context.Context, x ddlExec, ix CreateIndex) error {
	q := d.quote
	uniq := ""
	if ix.Unique {
		uniq = "UNIQUE "
	}
	// A failed CONCURRENTLY build leaves an INVALID index behind; drop it
	// before each attempt so that IF NOT EXISTS does not keep it.
	return x.withDDLConn(ctx, "CREATE "+uniq+"INDEX CONCURRENTLY "+q(ix.Name), func(ctx context.Context, c *sql.Conn) error {
		var invalid bool
		err := c.QueryRowContext(ctx, `SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)`, q(ix.Name)).Scan(&invalid)
		if err == nil && invalid {
			if _, err := c.ExecContext(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+q(ix.Name)); err != nil {
				return err
			}
		}
		_, err = c.ExecContext(ctx, "CREATE "+uniq+"INDEX CONCURRENTLY IF NOT EXISTS "+q(ix.Name)+" ON "+q(ix.Table)+" ("+quoteList(d, ix.Columns)+")")
		return err
	})
}

func (d postgresDialect) dropIndex(_, name string, inUnit bool) string {
	if inUnit {
		return "DROP INDEX IF EXISTS " + d.quote(name)
	}
	return "DROP INDEX CONCURRENTLY IF EXISTS " + d.quote(name)
}

func (d postgresDialect) renameIndex(_, from, to string) []string {
	return []string{"ALTER INDEX " + d.quote(from) + " RENAME TO " + d.quote(to)}
}

func (d postgresDialect) columnAttrs(table string, c colInfo, set colAttrs) ([]string, error) {
	q := d.quote
	var out []string
	pre := "ALTER TABLE " + q(table) + " ALTER COLUMN " + q(c.Name)
	if set.Default != nil {
		if *set.Default == "" {
			out = append(out, pre+" DROP DEFAULT")
		} else {
			out = append(out, pre+" SET DEFAULT "+*set.Default)
		}
	}
	if set.NotNull != nil {
		if *set.NotNull {
			out = append(out, pre+" SET NOT NULL")
		} else {
			out = append(out, pre+" DROP NOT NULL")
		}
	}
	if set.Comment != nil {
		out = append(out, "COMMENT ON COLUMN "+q(table)+"."+q(c.Name)+" IS "+quoteString(d.lex(), *set.Comment))
	}
	return out, nil
}

func (postgresDialect) autoIncrement(string) string { return "" }

func (d postgresDialect) notNull() notNullSteps {
	q := d.quote
	return notNullSteps{
		supported: true,
		expand: func(table, col, check string) string {
			return "ALTER TABLE " + q(table) + " ADD CONSTRAINT " + q(check) + " CHECK (" + q(col) + " IS NOT NULL) NOT VALID"
		},
		validate: func(table, check string) string {
			// VALIDATE scans under SHARE UPDATE EXCLUSIVE: writes go on.
			return "ALTER TABLE " + q(table) + " VALIDATE CONSTRAINT " + q(check)
		},
		// With a validated CHECK (col IS NOT NULL), SET NOT NULL skips the
		// table scan and holds its exclusive lock only briefly.
		contract: func(table, check string, c colInfo) ([]string, error) {
			return []string{
				"ALTER TABLE " + q(table) + " ALTER COLUMN " + q(c.Name) + " SET NOT NULL",
				"ALTER TABLE " + q(table) + " DROP CONSTRAINT IF EXISTS " + q(check),
			}, nil
		},
		rollback: func(table, check string) string {
			return "ALTER TABLE " + q(table) + " DROP CONSTRAINT IF EXISTS " + q(check)
		},
	}
}

func (d postgresDialect) foreignKey() foreignKeySteps {
	q := d.quote
	return foreignKeySteps{
		supported: true,
		add: func(ctx context.Context, x ddlExec, table, name, def string) error {
			return x.execDDL(ctx, "ALTER TABLE "+q(table)+" ADD CONSTRAINT "+q(name)+" "+def+" NOT VALID")
		},
		validate: func(table, name string) string {
			return "ALTER TABLE " + q(table) + " VALIDATE CONSTRAINT " + q(name)
		},
		drop: func(table, name string) string {
			return "ALTER TABLE " + q(table) + " DROP CONSTRAINT IF EXISTS " + q(name)
		},
	}
}

func (postgresDialect) distinct(a, b string) string { return a + " IS DISTINCT FROM " + b }

// pgBackfillGUC is the custom setting a PostgreSQL backfill session sets
// so that the dual-write trigger skips its rows.
const pgBackfillGUC = "baton.backfill"

// createTriggers installs one BEFORE INSERT OR UPDATE row trigger that
// assigns NEW in PL/pgSQL; it writes no row, so nothing recurses. The WHEN
// clause lets the backfill's own session skip it (see backfill.go)
// without a PL/pgSQL call per row.
func (d postgresDialect) createTriggers(name func(string) string, _ tables, p *syncPlan) []string {
	q := d.quote
	fn := q(name("sync"))
	rule := p.rule(d)
	body := fmt.Sprintf(`CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $baton$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF %s THEN
      %s
    ELSIF %s THEN
      %s
    END IF;
  ELSIF %s THEN
    %s
  ELSIF %s THEN
    %s
  END IF;
  RETURN NEW;
END
$baton$`, fn,
		rule.insNewUnwritten, pgAssign(q, rule.defaults, p.newCols, p.up),
		rule.insOldUnwritten, pgAssign(q, nil, p.oldCols, p.down),
		rule.updDeriveNew, pgAssign(q, nil, p.newCols, p.up),
		rule.updDeriveOld, pgAssign(q, nil, p.oldCols, p.down))
	trig := fmt.Sprintf(`CREATE OR REPLACE TRIGGER %s BEFORE INSERT OR UPDATE ON %s FOR EACH ROW WHEN (current_setting('%s', true) IS DISTINCT FROM 'on') EXECUTE FUNCTION %s()`,
		q(name("sync")), q(p.table), pgBackfillGUC, fn)
	return []string{body, trig}
}

// pgAssign is the PL/pgSQL that fills the defaults of unwritten columns
// (defaults: column -> SQL) and then assigns cols from exprs.
func pgAssign(q func(string) string, defaults map[string]string, cols []string, exprs map[string]string) string {
	var b strings.Builder
	for _, c := range sortedKeys(defaults) {
		fmt.Fprintf(&b, "IF NEW.%s IS NULL THEN NEW.%s := %s; END IF;\n      ", q(c), q(c), defaults[c])
	}
	for _, c := range cols {
		fmt.Fprintf(&b, "NEW.%s := %s;\n      ", q(c), exprs[c])
	}
	return strings.TrimSpace(b.String())
}

func (d postgresDialect) dropTriggers(name func(string) string, table string, tableExists bool) []string {
	var out []string
	if tableExists {
		out = append(out, "DROP TRIGGER IF EXISTS "+d.quote(name("sync"))+" ON "+d.quote(table))
	}
	return append(out, "DROP FUNCTION IF EXISTS "+d.quote(name("sync"))+"()")
}

func (postgresDialect) backfillSession(ctx context.Context, c *sql.Conn) (func(context.Context) error, error) {
	if _, err := c.ExecContext(ctx, "SELECT set_config('"+pgBackfillGUC+"', 'on', false)"); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		_, err := c.ExecContext(ctx, "RESET "+pgBackfillGUC)
		return err
	}, nil
}

func (postgresDialect) beginBatch(ctx context.Context, c *sql.Conn) (batchTx, error) {
	return c.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
}
