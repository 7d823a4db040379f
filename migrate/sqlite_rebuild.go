package migrate

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// columnDefs reads each column definition of the table's CREATE TABLE
// text, so that Rollback puts a changed one back exactly as written.
func (sqliteDialect) columnDefs(ctx context.Context, q queryer, table string) (map[string]string, error) {
	def, err := tableSQL(ctx, q, table)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	items, err := columnItems(def)
	for _, it := range items {
		if it.column != "" {
			out[strings.ToLower(it.column)] = def[it.from:it.to]
		}
	}
	return out, err
}

// defItem is one item of a CREATE TABLE's parenthesised list: a column
// definition (column set) or a table constraint, at def[from:to].
type defItem struct {
	column   string
	from, to int
}

// columnItems splits a CREATE TABLE text into its items.
func columnItems(def string) ([]defItem, error) {
	toks := tokenize(SQLite, def)
	open := -1
	for i, t := range toks {
		if t.text == "(" {
			open = i
			break
		}
	}
	if open < 0 {
		return nil, fmt.Errorf("cannot read its definition")
	}
	end := matchParen(toks, open)
	var out []defItem
	start := open + 1
	for i := open + 1; i <= end; i++ {
		if i < end && toks[i].text == "(" {
			i = matchParen(toks, i)
			continue
		}
		if i < end && toks[i].text != "," {
			continue
		}
		if start < i {
			it := defItem{from: toks[start].start, to: toks[i-1].end}
			if first := toks[start]; first.kind == tokQIdent || first.kind == tokIdent && !tableConstraint[first.upper()] {
				it.column = first.text
			}
			out = append(out, it)
		}
		start = i + 1
	}
	return out, nil
}

// rebuildWithout drops col from table the way SQLite documents for changes
// ALTER TABLE cannot make, inside the unit's transaction: a new table from
// the old definition without the column, the rows copied with their
// rowids, the old table dropped, the new one renamed, and the table's
// indexes and triggers created again. Writers wait for it (SQLite has one
// writer); Check refuses it when another table references this one, since
// foreign_keys cannot be switched off inside a transaction.
func (d sqliteDialect) rebuildWithout(ctx context.Context, c *sql.Conn, spec string) error {
	table, col, ok := strings.Cut(spec, "\x00")
	if !ok {
		return fmt.Errorf("migrate: malformed rebuild")
	}
	def, err := tableSQL(ctx, c, table)
	if err != nil {
		return err
	}
	items, err := columnItems(def)
	if err != nil || len(items) == 0 {
		return fmt.Errorf("migrate: table %q: cannot read its definition", table)
	}
	var keep, cols []string
	for _, it := range items {
		text := def[it.from:it.to]
		switch {
		case strings.EqualFold(it.column, col):
		case it.column == "":
			if namesColumn(SQLite, text, col) {
				return fmt.Errorf("%w: table %q: a table constraint names column %q: %s", ErrUnsupported, table, col, text)
			}
			keep = append(keep, text)
		default:
			keep = append(keep, text)
			cols = append(cols, d.quote(it.column))
		}
	}
	last := items[len(items)-1].to
	closeAt := last + strings.Index(def[last:], ")")
	tmp := table + "_baton_rebuild"
	created := "CREATE TABLE " + d.quote(tmp) + " (" + strings.Join(keep, ", ") + ")" + def[closeAt+1:]
	rowid := "rowid, "
	if strings.Contains(strings.ToUpper(def[closeAt+1:]), "WITHOUT") {
		rowid = ""
	}
	rows, err := c.QueryContext(ctx, `SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type, name`, table)
	if err != nil {
		return err
	}
	var again []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return err
		}
		again = append(again, s)
	}
	rows.Close()
	list := strings.Join(cols, ", ")
	return execAll(ctx, c, append([]string{
		"PRAGMA legacy_alter_table = ON",
		created,
		"INSERT INTO " + d.quote(tmp) + " (" + rowid + list + ") SELECT " + rowid + list + " FROM " + d.quote(table),
		"DROP TABLE " + d.quote(table),
		"ALTER TABLE " + d.quote(tmp) + " RENAME TO " + d.quote(table),
		"PRAGMA legacy_alter_table = OFF",
	}, again...))
}

// editColumn runs one column edit of unit.
func (d sqliteDialect) editColumn(ctx context.Context, c *sql.Conn, spec string) error {
	parts := strings.SplitN(spec, "\x00", 3)
	if len(parts) != 3 {
		return fmt.Errorf("migrate: malformed column edit")
	}
	table, col := parts[0], parts[1]
	var set colAttrs
	if err := json.Unmarshal([]byte(parts[2]), &set); err != nil {
		return fmt.Errorf("migrate: malformed column edit: %w", err)
	}
	def, err := tableSQL(ctx, c, table)
	if err != nil {
		return err
	}
	edited, err := editColumnDef(def, col, set)
	if err != nil {
		return fmt.Errorf("migrate: table %q: %w", table, err)
	}
	stmt := `UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ? AND sql = ?`
	if set.NotNull != nil && *set.NotNull {
		stmt += ` AND NOT EXISTS (SELECT 1 FROM ` + d.quote(table) + ` WHERE ` + d.quote(col) + ` IS NULL)`
	}
	res, err := c.ExecContext(ctx, stmt, edited, table, def)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("%w: column %q of table %q has NULL values: it cannot be made NOT NULL", ErrInvalid, col, table)
	}
	return nil
}

// columnAttrs returns a column edit for unit. SQLite has no column
// comments; a comment alone is no edit.
func (d sqliteDialect) columnAttrs(table string, c colInfo, set colAttrs) ([]string, error) {
	set.Comment = nil
	if set.NotNull == nil && set.Default == nil && set.Def == nil {
		return nil, nil
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	return []string{schemaEdit + table + "\x00" + c.Name + "\x00" + string(b)}, nil
}

// editColumnDef returns the CREATE TABLE text def with column col's NOT
// NULL and DEFAULT clauses replaced as set says (nil: kept as they are).
// It understands what SQLite itself writes there: a column definition is
// a name, a type and constraints, separated from the next by a top-level
// comma.
func editColumnDef(def, col string, set colAttrs) (string, error) {
	items, err := columnItems(def)
	if err != nil {
		return "", err
	}
	for _, it := range items {
		if !strings.EqualFold(it.column, col) {
			continue
		}
		item := def[it.from:it.to]
		if set.Def != nil {
			item = *set.Def
		} else {
			item = rewriteColumnDef(item, tokenize(SQLite, item), set)
		}
		return def[:it.from] + item + def[it.to:], nil
	}
	return "", fmt.Errorf("column %q not found in its definition", col)
}

// tableSQL is the CREATE TABLE text SQLite keeps for table ("" if none).
func tableSQL(ctx context.Context, q queryer, table string) (string, error) {
	var def sql.NullString
	err := q.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&def)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("migrate: read definition of %q: %w", table, err)
	}
	return def.String, nil
}

// rewriteColumnDef rewrites the column definition made of toks.
func rewriteColumnDef(def string, toks []token, set colAttrs) string {
	var keep []string
	notNull, dflt := false, ""
	pos := toks[0].start
	var b strings.Builder
	flush := func(from, to int) {
		if k := strings.TrimSpace(def[from:max(from, to)]); k != "" {
			keep = append(keep, k)
		}
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.upper() == "NOT" && i+1 < len(toks) && toks[i+1].upper() == "NULL":
			flush(pos, t.start)
			notNull = true
			i++
			pos = toks[i].end
		case t.upper() == "DEFAULT" && i+1 < len(toks):
			flush(pos, t.start)
			j := i + 1
			switch {
			case toks[j].text == "(":
				j = matchParen(toks, j)
			case (toks[j].text == "-" || toks[j].text == "+") && j+1 < len(toks):
				j++
			}
			dflt = def[toks[i+1].start:toks[j].end]
			i = j
			pos = toks[j].end
		}
	}
	flush(pos, toks[len(toks)-1].end)
	if set.NotNull != nil {
		notNull = *set.NotNull
	}
	if set.Default != nil {
		dflt = *set.Default
	}
	b.WriteString(strings.Join(keep, " "))
	if notNull {
		b.WriteString(" NOT NULL")
	}
	if dflt != "" {
		b.WriteString(" DEFAULT " + dflt)
	}
	return def[:toks[0].start] + b.String() + def[toks[len(toks)-1].end:]
}
