package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// mysqlDialect is MySQL 8.0.29 or later and MariaDB 10.5 or later.
type mysqlDialect struct{}

func (mysqlDialect) name() Dialect { return MySQL }

func (mysqlDialect) quote(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func (mysqlDialect) param(int) string { return "?" }

func (mysqlDialect) lex() lexRules {
	return lexRules{hashComments: true, backslashEscapes: true, backticks: true}
}

func (mysqlDialect) caps() capabilities {
	return capabilities{onlineClause: true, lateNotNull: true, comments: true, dropsUnique: true, volatile: []string{"RAND", "UUID", "UUID_SHORT", "SYSDATE", "UUID_TO_BIN", "CONNECTION_ID", "LAST_INSERT_ID"}}
}

func (mysqlDialect) nowMS() string { return "CAST(UNIX_TIMESTAMP(SYSDATE(3)) * 1000 AS SIGNED)" }

func (mysqlDialect) textType() string { return "VARCHAR(191)" } // bounded: it is a key

func (mysqlDialect) upsert(table string, cols, vals, _, update []string) string {
	set := make([]string, len(update))
	for i, c := range update {
		set[i] = c + " = VALUES(" + c + ")"
	}
	return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(vals, ", ") + ") ON DUPLICATE KEY UPDATE " + strings.Join(set, ", ")
}

func (mysqlDialect) extraStateDDL(tables) []string { return nil }

// lockTimeout sets both timeouts: metadata locks (DDL) use
// lock_wait_timeout, InnoDB row locks innodb_lock_wait_timeout; both are
// whole seconds, at least 1.
func (mysqlDialect) lockTimeout(ctx context.Context, c *sql.Conn, t time.Duration) (func(context.Context) error, error) {
	s := max(int64((t+time.Second-1)/time.Second), 1)
	if err := execAll(ctx, c, []string{
		fmt.Sprintf("SET SESSION lock_wait_timeout = %d", s),
		fmt.Sprintf("SET SESSION innodb_lock_wait_timeout = %d", s),
	}); err != nil {
		return nil, fmt.Errorf("migrate: set lock timeout: %w", err)
	}
	return func(ctx context.Context) error {
		return execAll(ctx, c, []string{"SET SESSION lock_wait_timeout = DEFAULT", "SET SESSION innodb_lock_wait_timeout = DEFAULT"})
	}, nil
}

// retryable matches the error numbers in the message: go-sql-driver's
// *MySQLError carries them only in a field, and the package stays
// driver-free.
func (mysqlDialect) retryable(err error) bool {
	msg := err.Error()
	for _, n := range []string{"Error 1205", "Error 1213", "Error 3572"} {
		if strings.Contains(msg, n) {
			return true
		}
	}
	return false
}

// columns reads the catalog. COLUMN_DEFAULT differs: MariaDB gives SQL
// text ('x' quoted, NULL as the word), MySQL the bare value, with
// DEFAULT_GENERATED marking an expression. The type carries a non-default
// collation so that a restated column keeps it.
func (mysqlDialect) columns(ctx context.Context, q queryer, table string) ([]colInfo, error) {
	rows, err := q.QueryContext(ctx, `SELECT c.COLUMN_NAME,
		CONCAT(c.COLUMN_TYPE, IF(c.COLLATION_NAME IS NULL OR c.COLLATION_NAME = t.TABLE_COLLATION, '', CONCAT(' COLLATE ', c.COLLATION_NAME))),
		c.IS_NULLABLE = 'NO',
		COALESCE((SELECT k.ORDINAL_POSITION FROM information_schema.KEY_COLUMN_USAGE k WHERE k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME AND k.CONSTRAINT_NAME = 'PRIMARY' AND k.COLUMN_NAME = c.COLUMN_NAME), 0),
		CASE WHEN c.COLUMN_DEFAULT IS NULL THEN NULL
			WHEN VERSION() LIKE '%MariaDB%' THEN NULLIF(c.COLUMN_DEFAULT, 'NULL')
			WHEN c.EXTRA LIKE '%DEFAULT_GENERATED%' THEN CONCAT('(', c.COLUMN_DEFAULT, ')')
			ELSE QUOTE(c.COLUMN_DEFAULT) END,
		COALESCE(c.GENERATION_EXPRESSION, '') <> '',
		NULLIF(c.COLUMN_COMMENT, '')
		FROM information_schema.COLUMNS c JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
		WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION`, table)
	return scanColumns(rows, table, err)
}

func (mysqlDialect) indexes(ctx context.Context, q queryer, table string) ([]indexInfo, error) {
	rows, err := q.QueryContext(ctx, `SELECT INDEX_NAME, MIN(NON_UNIQUE) = 0, INDEX_NAME = 'PRIMARY', FALSE,
		MIN(SUB_PART IS NULL AND COLUMN_NAME IS NOT NULL AND INDEX_TYPE IN ('BTREE', 'HASH')),
		COALESCE(GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ','), '')
		FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? GROUP BY INDEX_NAME ORDER BY INDEX_NAME`, table)
	return scanIndexes(rows, table, err)
}

// constraints lists foreign keys from and to the column, and CHECK
// constraints whose clause names it.
func (d mysqlDialect) constraints(ctx context.Context, q queryer, table, col string) ([]constraintInfo, error) {
	rows, err := q.QueryContext(ctx, `SELECT k.CONSTRAINT_NAME, k.TABLE_NAME, k.REFERENCED_TABLE_NAME,
		GROUP_CONCAT(k.COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ','), GROUP_CONCAT(k.REFERENCED_COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ','),
		MAX(k.REFERENCED_TABLE_NAME = ? AND k.REFERENCED_COLUMN_NAME = ?), MAX(k.TABLE_NAME = ? AND k.COLUMN_NAME = ?), MIN(r.UPDATE_RULE), MIN(r.DELETE_RULE)
		FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r
		ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME
		WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL AND (k.TABLE_NAME = ? OR k.REFERENCED_TABLE_NAME = ?)
		GROUP BY k.CONSTRAINT_NAME, k.TABLE_NAME, k.REFERENCED_TABLE_NAME`, table, col, table, col, table, table)
	if err != nil {
		return nil, fmt.Errorf("migrate: read constraints of %q: %w", table, err)
	}
	var out []constraintInfo
	for rows.Next() {
		var k constraintInfo
		var cols, refs, upd, del string
		var in, own bool
		if err := rows.Scan(&k.Name, &k.Table, &k.FK.RefTable, &cols, &refs, &in, &own, &upd, &del); err != nil {
			rows.Close()
			return nil, fmt.Errorf("migrate: read constraints of %q: %w", table, err)
		}
		if !in && !own {
			continue
		}
		k.Kind, k.Incoming = "FOREIGN KEY", in
		k.FK.Name, k.FK.Table, k.FK.Columns, k.FK.RefColumns = k.Name, k.Table, strings.Split(cols, ","), strings.Split(refs, ",")
		k.Def = "FOREIGN KEY (" + quoteList(d, k.FK.Columns) + ") REFERENCES " + d.quote(k.FK.RefTable) + " (" + quoteList(d, k.FK.RefColumns) + ") ON UPDATE " + upd + " ON DELETE " + del
		out = append(out, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = q.QueryContext(ctx, `SELECT k.CONSTRAINT_NAME, 'CHECK', t.TABLE_NAME, k.CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS k
		JOIN information_schema.TABLE_CONSTRAINTS t ON t.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND t.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND t.CONSTRAINT_TYPE = 'CHECK'
		WHERE k.CONSTRAINT_SCHEMA = DATABASE() AND t.TABLE_NAME = ?`, table)
	checks, err := scanConstraints(rows, table, err)
	if err != nil {
		return nil, err
	}
	for _, k := range checks {
		if namesColumn(MySQL, k.Def, col) {
			out = append(out, k)
		}
	}
	return out, nil
}

// carryConstraint carries a foreign key, from the table or to it (rebuilt
// from the catalog with to in place of from); CHECK constraints have no
// NOT VALID here, and adding one validates every row under a lock.
func (d mysqlDialect) carryConstraint(k constraintInfo, from, to string) (string, bool) {
	if k.Kind != "FOREIGN KEY" {
		return "", false
	}
	list := k.FK.Columns
	if k.Incoming {
		list = k.FK.RefColumns
	}
	cols := make([]string, len(list))
	for i, c := range list {
		cols[i] = c
		if strings.EqualFold(c, from) {
			cols[i] = to
		}
	}
	old := "(" + quoteList(d, list) + ")"
	if k.Incoming {
		i := strings.Index(k.Def, " REFERENCES ")
		return k.Def[:i] + strings.Replace(k.Def[i:], old, "("+quoteList(d, cols)+")", 1), true
	}
	return strings.Replace(k.Def, old, "("+quoteList(d, cols)+")", 1), true
}

func (mysqlDialect) columnDefs(context.Context, queryer, string) (map[string]string, error) {
	return nil, nil
}

func (mysqlDialect) referencing(ctx context.Context, q queryer, table string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT DISTINCT TABLE_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME = ? ORDER BY 1`, table)
	return scanAll(rows, err, "references", table, func(rows *sql.Rows) (string, error) {
		var s string
		return s, rows.Scan(&s)
	})
}

func (d mysqlDialect) dropColumn(table, col string, _ bool) string {
	return "ALTER TABLE " + d.quote(table) + " DROP COLUMN " + d.quote(col)
}

// renameConstraint: MySQL cannot rename a foreign key; a carried one keeps
// its own name.
func (mysqlDialect) renameConstraint(string, string, string) []string { return nil }

func (mysqlDialect) tableExists(ctx context.Context, q queryer, table string) (bool, error) {
	return count(ctx, q, `SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table)
}

func (mysqlDialect) constraintExists(ctx context.Context, q queryer, table, name string) (bool, error) {
	return count(ctx, q, `SELECT count(*) FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND CONSTRAINT_NAME = ?`, table, name)
}

// session takes GET_LOCK on a pinned connection; IS_USED_LOCK names the
// connection that holds it, which any connection can compare.
func (mysqlDialect) session(ctx context.Context, l *lockEnv) (*heldLock, bool, error) {
	c, err := l.db.Conn(ctx)
	if err != nil {
		return nil, false, err
	}
	var n sql.NullInt64
	var id int64
	err = c.QueryRowContext(ctx, `SELECT GET_LOCK(?, 0), CONNECTION_ID()`, l.key).Scan(&n, &id)
	if err != nil || !n.Valid || n.Int64 != 1 {
		_ = c.Close()
		return nil, false, err
	}
	h := watchSession(l, c, "SELECT 1", `SELECT RELEASE_LOCK(?)`)
	h.cond, h.args = `IS_USED_LOCK(?) = ?`, []any{l.key, id}
	return h, true, nil
}

// alter tries ALGORITHM=INSTANT, then INPLACE with LOCK=NONE; neither
// blocks concurrent writes for a table copy.
func (d mysqlDialect) alter(table, clause string) []string {
	base := "ALTER TABLE " + d.quote(table) + " " + clause
	return []string{base + ", ALGORITHM=INSTANT", base + ", ALGORITHM=INPLACE, LOCK=NONE"}
}

// unit holds a table write lock for the statements: MySQL's DDL is not
// transactional, so concurrent writers wait (at most their own lock wait
// timeout) rather than see a trigger without its column or the reverse.
// The statements are instant or metadata-only.
func (d mysqlDialect) unit(ctx context.Context, c *sql.Conn, table string, stmts []string) error {
	if _, err := c.ExecContext(ctx, "LOCK TABLES "+d.quote(table)+" WRITE"); err != nil {
		return err
	}
	err := execAll(ctx, c, stmts)
	if _, uerr := c.ExecContext(context.WithoutCancel(ctx), "UNLOCK TABLES"); uerr != nil && err == nil {
		err = uerr
	}
	return err
}

func (d mysqlDialect) createIndex(ctx context.Context, x ddlExec, ix CreateIndex) error {
	ok, err := indexExists(ctx, d, x.catalog(), ix.Table, ix.Name)
	if err != nil || ok {
		return err
	}
	uniq := ""
	if ix.Unique {
		uniq = "UNIQUE "
	}
	return x.execDDL(ctx, "CREATE "+uniq+"INDEX "+d.quote(ix.Name)+" ON "+d.quote(ix.Table)+" ("+quoteList(d, ix.Columns)+") ALGORITHM=INPLACE LOCK=NONE")
}

func (d mysqlDialect) dropIndex(table, name string, inUnit bool) string {
	if inUnit {
		return "ALTER TABLE " + d.quote(table) + " DROP INDEX " + d.quote(name)
	}
	return "ALTER TABLE " + d.quote(table) + " DROP INDEX " + d.quote(name) + ", ALGORITHM=INPLACE, LOCK=NONE"
}

func (d mysqlDialect) renameIndex(table, from, to string) []string {
	return []string{"ALTER TABLE " + d.quote(table) + " RENAME INDEX " + d.quote(from) + " TO " + d.quote(to)}
}

// columnAttrs changes a default in place; anything else restates the
// column (type with collation, nullability, default, comment) with MODIFY.
func (d mysqlDialect) columnAttrs(table string, c colInfo, set colAttrs) ([]string, error) {
	q := d.quote
	if set.NotNull == nil && set.Comment == nil && set.Default != nil {
		if *set.Default == "" {
			return []string{"ALTER TABLE " + q(table) + " ALTER COLUMN " + q(c.Name) + " DROP DEFAULT"}, nil
		}
		return []string{"ALTER TABLE " + q(table) + " ALTER COLUMN " + q(c.Name) + " SET DEFAULT " + *set.Default}, nil
	}
	if set.Default != nil {
		c.Default = *set.Default
	}
	if set.NotNull != nil {
		c.NotNull = *set.NotNull
	}
	if set.Comment != nil {
		c.Comment = *set.Comment
	}
	def := q(c.Name) + " " + c.Type
	if c.NotNull {
		def += " NOT NULL"
	} else {
		def += " NULL"
	}
	if c.Default != "" {
		def += " DEFAULT " + c.Default
	}
	if c.Comment != "" {
		def += " COMMENT " + quoteString(d.lex(), c.Comment)
	}
	return []string{"ALTER TABLE " + q(table) + " MODIFY COLUMN " + def + ", ALGORITHM=INPLACE, LOCK=NONE"}, nil
}

func (mysqlDialect) autoIncrement(typ string) string {
	if strings.Contains(strings.ToLower(typ), "int") {
		return " AUTO_INCREMENT"
	}
	return ""
}

// notNull: MySQL has no NOT VALID; Backfill looks for NULLs itself and
// Complete restates the column NOT NULL in place.
func (d mysqlDialect) notNull() notNullSteps {
	return notNullSteps{
		supported: true,
		expand:    func(string, string, string) string { return "" },
		validate:  func(string, string) string { return "" },
		contract: func(table, _ string, c colInfo) ([]string, error) {
			if c.NotNull {
				return nil, nil
			}
			t := true
			return d.columnAttrs(table, c, colAttrs{NotNull: &t})
		},
		rollback: func(string, string) string { return "" },
	}
}

// foreignKey: added with foreign_key_checks off, which MySQL/MariaDB do in
// place without checking existing rows; Backfill then looks for orphans
// (PostgreSQL's NOT VALID ... VALIDATE).
func (d mysqlDialect) foreignKey() foreignKeySteps {
	q := d.quote
	return foreignKeySteps{
		supported: true,
		add: func(ctx context.Context, x ddlExec, table, name, def string) error {
			stmt := "ALTER TABLE " + q(table) + " ADD CONSTRAINT " + q(name) + " " + def + ", ALGORITHM=INPLACE, LOCK=NONE"
			return x.withDDLConn(ctx, stmt, func(ctx context.Context, c *sql.Conn) error {
				if _, err := c.ExecContext(ctx, "SET SESSION foreign_key_checks = 0"); err != nil {
					return err
				}
				_, err := c.ExecContext(ctx, stmt)
				if _, rerr := c.ExecContext(context.WithoutCancel(ctx), "SET SESSION foreign_key_checks = 1"); rerr != nil && err == nil {
					err = rerr
				}
				return err
			})
		},
		validate: func(string, string) string { return "" },
		drop: func(table, name string) string {
			return "ALTER TABLE " + q(table) + " DROP FOREIGN KEY " + q(name)
		},
	}
}

func (mysqlDialect) distinct(a, b string) string { return "NOT (" + a + " <=> " + b + ")" }

// createTriggers installs BEFORE INSERT and BEFORE UPDATE triggers that
// SET NEW.x.
func (d mysqlDialect) createTriggers(name func(string) string, _ tables, p *syncPlan) []string {
	q := d.quote
	rule := p.rule(d)
	set := func(defaults map[string]string, cols []string, exprs map[string]string) string {
		var b strings.Builder
		for _, c := range sortedKeys(defaults) {
			fmt.Fprintf(&b, "IF NEW.%s IS NULL THEN SET NEW.%s = %s; END IF;\n    ", q(c), q(c), defaults[c])
		}
		parts := make([]string, len(cols))
		for i, c := range cols {
			parts[i] = "NEW." + q(c) + " = " + exprs[c]
		}
		return b.String() + "SET " + strings.Join(parts, ", ") + ";"
	}
	ins := fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s BEFORE INSERT ON %s FOR EACH ROW BEGIN\n  IF %s THEN\n    %s\n  ELSEIF %s THEN\n    %s\n  END IF;\nEND",
		q(name("bi")), q(p.table), rule.insNewUnwritten, set(rule.defaults, p.newCols, p.up), rule.insOldUnwritten, set(nil, p.oldCols, p.down))
	upd := fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s BEFORE UPDATE ON %s FOR EACH ROW BEGIN\n  IF %s THEN\n    %s\n  ELSEIF %s THEN\n    %s\n  END IF;\nEND",
		q(name("bu")), q(p.table), rule.updDeriveNew, set(nil, p.newCols, p.up), rule.updDeriveOld, set(nil, p.oldCols, p.down))
	return []string{ins, upd}
}

func (d mysqlDialect) dropTriggers(name func(string) string, _ string, _ bool) []string {
	return []string{"DROP TRIGGER IF EXISTS " + d.quote(name("bi")), "DROP TRIGGER IF EXISTS " + d.quote(name("bu"))}
}

func (mysqlDialect) backfillSession(context.Context, *sql.Conn) (func(context.Context) error, error) {
	return func(context.Context) error { return nil }, nil
}

// beginBatch uses READ COMMITTED, which avoids gap locks on the key range
// that would block inserts at the end of the table.
func (mysqlDialect) beginBatch(ctx context.Context, c *sql.Conn) (batchTx, error) {
	return c.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
}

// indexExists reports whether table has an index called name.
func indexExists(ctx context.Context, d dialect, q queryer, table, name string) (bool, error) {
	ixs, err := d.indexes(ctx, q, table)
	for _, ix := range ixs {
		if ix.Name == name || (!d.lex().caseSensitive && strings.EqualFold(ix.Name, name)) {
			return true, nil
		}
	}
	return false, err
}
