package migrate

import (
	"fmt"
	"slices"
	"strings"
)

// Rule is one lint rule: an unsafe schema change, why it is unsafe, and the
// safe way to get the same result.
// The zero Rule names no rule; Rules never returns one.
type Rule struct {
	// Name is the stable identifier used in findings and in tests.
	Name string
	// Explanation says what goes wrong while old and new code run.
	Explanation string
	// Alternative is the safe way, usually an Operation of this package.
	Alternative string
	// Dialects lists where the rule applies.
	Dialects []Dialect
	// Severity says whether a Runner in LintRefuse mode refuses the change
	// (SeverityError, the zero value) or only logs it.
	Severity Severity
}

// Severity grades a lint rule. The zero value is SeverityError.
type Severity int

const (
	// SeverityError marks a change that breaks the code of one of the
	// running versions or blocks reads or writes for a scan, a rewrite or
	// an index build. A Runner with LintRefuse refuses to run it.
	SeverityError Severity = iota
	// SeverityWarning marks a change that is risky but may well be fine
	// (an online build the server may or may not pick, a data change that
	// holds row locks for its duration). Runners only log it.
	SeverityWarning
)

// String returns "error" or "warning".
func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

var all3 = []Dialect{PostgreSQL, MySQL, SQLite}

// rules is the catalogue; Rules returns a copy.
var rules = []Rule{
	{"drop-column", "dropping a column while old code runs breaks every old query that names it", "DropColumn, which runs only in the contract phase (Complete), after old versions are gone", all3, SeverityError},
	{"drop-table", "dropping a table while old code runs breaks every old query on it", "DropTable, which runs only on Complete", all3, SeverityError},
	{"rename-column", "a rename is a drop for old code and an add for new code: one of the two versions fails whichever runs", "RenameColumn: a new column kept in sync by triggers, backfilled, old one dropped on Complete", all3, SeverityError},
	{"rename-table", "renaming a table breaks every query of the version that uses the other name", "create the new table, dual-write and backfill (Transform or RawSQL with triggers), drop the old one on Complete", all3, SeverityError},
	{"change-column-type", "changing a column's type rewrites the table under an exclusive lock (PostgreSQL, SQLite) or a copy (MySQL), and old code may not accept the new type", "ChangeType: a new column of the new type, dual write, backfill, switch, drop", []Dialect{PostgreSQL, MySQL}, SeverityError},
	{"add-column-not-null-without-default", "existing rows have no value: the statement fails or rewrites the table, and old code inserting without the column fails", "add the column nullable (or with a constant default), backfill, then SetNotNull", all3, SeverityError},
	{"set-not-null", "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE, blocking reads and writes", "SetNotNull: CHECK (col IS NOT NULL) NOT VALID, VALIDATE without blocking writes, then SET NOT NULL which skips the scan", []Dialect{PostgreSQL}, SeverityError},
	{"check-without-not-valid", "adding a CHECK constraint validates every row while holding a lock that blocks writes", "PostgreSQL: ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE CONSTRAINT in a later step; MySQL/MariaDB have no NOT VALID: enforce in the application or a trigger", []Dialect{PostgreSQL, MySQL}, SeverityError},
	{"foreign-key-without-not-valid", "adding a foreign key validates every row while blocking writes on both tables (PostgreSQL) or copies the table (MySQL with foreign_key_checks on)", "AddForeignKey: NOT VALID then VALIDATE (PostgreSQL), foreign_key_checks=0 with ALGORITHM=INPLACE then an orphan check (MySQL)", []Dialect{PostgreSQL, MySQL}, SeverityError},
	{"index-without-concurrently", "CREATE INDEX without CONCURRENTLY blocks writes to the table for the whole build", "CREATE INDEX CONCURRENTLY (CreateIndex does it), outside a transaction", []Dialect{PostgreSQL}, SeverityError},
	{"drop-index-without-concurrently", "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table, queueing every query behind it", "DROP INDEX CONCURRENTLY", []Dialect{PostgreSQL}, SeverityError},
	{"index-not-online", "without ALGORITHM=INPLACE, LOCK=NONE MySQL may pick a table copy or a write lock silently", "state ALGORITHM=INPLACE, LOCK=NONE so that the server refuses rather than locks (CreateIndex does it)", []Dialect{MySQL}, SeverityWarning},
	{"volatile-default", "a volatile default (random(), uuid(), clock_timestamp() ...) must be computed per row: the table is rewritten under an exclusive lock", "add the column nullable without default, fill it with a batched backfill (Transform), then set the default for new rows", all3, SeverityError},
	{"unique-constraint-without-index", "ADD UNIQUE / PRIMARY KEY builds the index while blocking writes", "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX", []Dialect{PostgreSQL}, SeverityError},
	{"backfill-in-ddl-transaction", "updating rows in the same script as DDL holds the DDL's locks (and the row locks of the whole update) until the end", "run DDL and data changes separately: a Transform's batched backfill commits small batches between DDL steps", all3, SeverityWarning},
	{"no-lock-timeout", "a DDL statement waiting for its lock queues every later query on the table behind it, without bound", "SET lock_timeout (PostgreSQL), SET SESSION lock_wait_timeout (MySQL) or PRAGMA busy_timeout (SQLite) first, and retry; the Runner does both", all3, SeverityWarning},
}

// Rules returns the lint rules, in catalogue order.
func Rules() []Rule { return slices.Clone(rules) }

func ruleByName(name string) Rule {
	for _, r := range rules {
		if r.Name == name {
			return r
		}
	}
	return Rule{Name: name}
}

// Finding is one unsafe change found by Lint or LintSQL.
// The zero Finding is not a finding (its Rule is the zero Rule); Lint and
// LintSQL never return one.
type Finding struct {
	Rule
	// Operation is the index in Migration.Operations, or -1 for LintSQL.
	Operation int
	// Line is the 1-based line of the statement in the SQL text (0 for an
	// operation that is not raw SQL).
	Line int
	// Statement is the offending SQL, or a description of the operation.
	Statement string
}

// String formats the finding for a terminal: where, the rule, why it is
// unsafe, the statement and the safe alternative.
func (f Finding) String() string {
	loc := ""
	if f.Operation >= 0 {
		loc = fmt.Sprintf("operations[%d]", f.Operation)
	}
	if f.Line > 0 {
		if loc != "" {
			loc += " "
		}
		loc += fmt.Sprintf("line %d", f.Line)
	}
	return fmt.Sprintf("%s: %s (%s): %s\n  statement: %s\n  safe alternative: %s", loc, f.Name, f.Severity, f.Explanation, oneLine(f.Statement), f.Alternative)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// Lint checks a migration for dialect d. Operations built by this package
// are safe by construction except where noted; RawSQL is checked statement
// by statement (drop rules do not apply to RawSQL marked Contract, which
// runs when old code is gone; no-lock-timeout does not apply because the
// Runner sets the lock timeout).
func Lint(m *Migration, d Dialect) []Finding {
	var out []Finding
	created := map[string]bool{}
	for i, op := range m.Operations {
		switch o := op.(type) {
		case CreateTable:
			created[strings.ToLower(o.Table)] = true
		case AddColumn:
			c := o.Column
			desc := fmt.Sprintf("add_column %s.%s %s", o.Table, c.Name, c.Type)
			if c.NotNull && c.Default == "" {
				out = append(out, Finding{Rule: ruleByName("add-column-not-null-without-default"), Operation: i, Statement: desc})
			}
			// The type is checked too: Validate refuses a type that carries a
			// default, but Lint also reads migrations nobody validated.
			if hasVolatile(d, tokenize(d, c.Type+" "+c.Default)) {
				out = append(out, Finding{Rule: ruleByName("volatile-default"), Operation: i, Statement: desc + " DEFAULT " + c.Default})
			}
		case RawSQL:
			l := sqlLinter{d: d, runner: true, contract: o.Contract, created: created}
			for _, f := range l.lint(o.Up) {
				f.Operation = i
				out = append(out, f)
			}
		}
	}
	return out
}

// LintSQL checks an SQL script meant to run as written (for example a
// migration file of another tool) for dialect d. Findings have Operation -1.
//
// What it recognises, statement by statement (statements split at
// top-level semicolons; comments and string literals ignored):
// ALTER TABLE with its comma-separated actions (ADD [COLUMN], ADD
// [CONSTRAINT x] CHECK / FOREIGN KEY / UNIQUE / PRIMARY KEY, ADD INDEX/KEY,
// DROP [COLUMN], RENAME [COLUMN] / RENAME TO, ALTER [COLUMN] TYPE / SET DATA
// TYPE / SET NOT NULL, MODIFY, CHANGE); CREATE [UNIQUE] INDEX; DROP INDEX;
// DROP TABLE; RENAME TABLE; CREATE TABLE (its table is then new, and indexes
// on it need no CONCURRENTLY); UPDATE, DELETE and INSERT ... SELECT (data
// changes); SET lock_timeout, SET [SESSION] lock_wait_timeout and PRAGMA
// busy_timeout. Anything else is not examined.
func LintSQL(d Dialect, text string) []Finding {
	l := sqlLinter{d: d, created: map[string]bool{}}
	out := l.lint(text)
	for i := range out {
		out[i].Operation = -1
	}
	return out
}

type sqlLinter struct {
	d        Dialect
	runner   bool // run by the Runner: lock timeout set for us
	contract bool // runs in the contract phase
	created  map[string]bool
}

type stmt struct {
	toks []token
	text string
	line int
}

func splitWithLines(d Dialect, text string) []stmt {
	toks := tokenize(d, text)
	var out []stmt
	start := 0
	var b blocks
	for i := 0; i <= len(toks); i++ {
		end := i == len(toks)
		if !end {
			b.step(toks, i, start)
		}
		if end || (toks[i].kind == tokPunct && toks[i].text == ";" && b.depth == 0) {
			if i > start {
				s := stmt{toks: toks[start:i], text: text[toks[start].start:toks[i-1].end]}
				s.line = 1 + strings.Count(text[:toks[start].start], "\n")
				out = append(out, s)
			}
			start = i + 1
		}
	}
	return out
}

func (l *sqlLinter) lint(text string) []Finding {
	var out []Finding
	stmts := splitWithLines(l.d, text)
	lockTimeout := l.runner
	hasDDL, dataChange := false, -1
	add := func(rule string, s stmt) {
		r := ruleByName(rule)
		if !slices.Contains(r.Dialects, l.d) {
			return
		}
		for _, f := range out { // one finding per rule and statement
			if f.Name == rule && f.Line == s.line {
				return
			}
		}
		out = append(out, Finding{Rule: r, Line: s.line, Statement: s.text})
	}
	for _, s := range stmts {
		t := s.toks
		kw := func(i int) string {
			if i < len(t) {
				return up(t, i)
			}
			return ""
		}
		switch {
		case kw(0) == "SET" && (containsKW(t, "LOCK_TIMEOUT") || containsKW(t, "LOCK_WAIT_TIMEOUT")):
			lockTimeout = true
			continue
		case kw(0) == "PRAGMA" && containsKW(t, "BUSY_TIMEOUT"):
			lockTimeout = true
			continue
		case kw(0) == "UPDATE" || kw(0) == "DELETE" || (kw(0) == "INSERT" && containsKW(t, "SELECT")):
			if dataChange < 0 {
				dataChange = len(out)
			}
			if hasDDL {
				add("backfill-in-ddl-transaction", s)
			}
			continue
		}
		ddl, locking := l.ddl(s, add)
		if !ddl {
			continue
		}
		if dataChange >= 0 && !hasDDL {
			// Data change before the first DDL statement of the script.
			add("backfill-in-ddl-transaction", s)
		}
		hasDDL = true
		if locking && !lockTimeout {
			add("no-lock-timeout", s)
			lockTimeout = true // report once per script
		}
	}
	return out
}

func containsKW(t []token, kw string) bool {
	for _, x := range t {
		if x.upper() == kw {
			return true
		}
	}
	return false
}

// seq reports whether the keywords kws appear in order starting at i.
func seq(t []token, i int, kws ...string) bool {
	for j, k := range kws {
		if i+j >= len(t) || t[i+j].upper() != k {
			return false
		}
	}
	return true
}

// tableName reads a possibly schema-qualified name at i; it returns the
// last part, lower-cased, and the index after it.
func tableName(t []token, i int) (string, int) {
	name := ""
	for i < len(t) {
		if t[i].kind != tokIdent && t[i].kind != tokQIdent {
			break
		}
		name = strings.ToLower(t[i].text)
		i++
		if i < len(t) && t[i].text == "." {
			i++
			continue
		}
		break
	}
	return name, i
}

// ddl examines one statement. It returns whether it is DDL and whether it
// takes a lock that queues other queries (all ALTER/DROP/CREATE INDEX on an
// existing table).
func (l *sqlLinter) ddl(s stmt, add func(string, stmt)) (isDDL, locking bool) {
	t := s.toks
	if len(t) == 0 {
		return false, false
	}
	switch t[0].upper() {
	case "CREATE":
		i := 1
		if seq(t, i, "OR", "REPLACE") {
			i += 2
		}
		unique := false
		if up(t, i) == "UNIQUE" {
			unique = true
			i++
		}
		switch {
		case i < len(t) && up(t, i) == "TABLE":
			i++
			if seq(t, i, "IF", "NOT", "EXISTS") {
				i += 3
			}
			name, _ := tableName(t, i)
			l.created[name] = true
			return true, false
		case i < len(t) && up(t, i) == "INDEX":
			_ = unique
			on := -1
			for j := i; j < len(t); j++ {
				if t[j].upper() == "ON" {
					on = j
					break
				}
			}
			table := ""
			if on >= 0 {
				table, _ = tableName(t, on+1)
				if up(t, on+1) == "ONLY" {
					table, _ = tableName(t, on+2)
				}
			}
			if l.created[table] {
				return true, false
			}
			// add keeps only the rules of l.d: each dialect's online way.
			if !containsKW(t, "CONCURRENTLY") {
				add("index-without-concurrently", s)
			}
			if !online(t) {
				add("index-not-online", s)
			}
			return true, true
		}
		return true, false
	case "DROP":
		switch up(t, 1) {
		case "TABLE":
			if !l.contract {
				add("drop-table", s)
			}
			return true, true
		case "INDEX":
			if !containsKW(t, "CONCURRENTLY") {
				add("drop-index-without-concurrently", s)
			}
			return true, true
		}
		return true, true
	case "RENAME":
		if up(t, 1) == "TABLE" {
			add("rename-table", s)
		}
		return true, true
	case "ALTER":
		if up(t, 1) != "TABLE" {
			return true, true
		}
		i := 2
		if seq(t, i, "IF", "EXISTS") {
			i += 2
		}
		if up(t, i) == "ONLY" {
			i++
		}
		table, i := tableName(t, i)
		if l.created[table] {
			return true, false
		}
		for _, a := range splitActions(t[i:]) {
			l.action(s, a, add)
		}
		return true, true
	}
	return false, false
}

// online reports an explicit LOCK=NONE (MySQL), which makes the server
// refuse instead of locking.
func online(t []token) bool {
	for i := 0; i+2 < len(t); i++ {
		if up(t, i) == "LOCK" && t[i+1].text == "=" && t[i+2].upper() == "NONE" {
			return true
		}
	}
	return false
}

// splitActions splits ALTER TABLE actions at top-level commas.
func splitActions(t []token) [][]token {
	var out [][]token
	depth, start := 0, 0
	for i, x := range t {
		switch x.text {
		case "(":
			depth++
		case ")":
			depth--
		case ",":
			if depth == 0 && x.kind == tokPunct {
				out = append(out, t[start:i])
				start = i + 1
			}
		}
	}
	return append(out, t[start:])
}

var constraintWords = map[string]bool{"CONSTRAINT": true, "CHECK": true, "FOREIGN": true, "UNIQUE": true, "PRIMARY": true, "INDEX": true, "KEY": true, "FULLTEXT": true, "SPATIAL": true}

func (l *sqlLinter) action(s stmt, a []token, add func(string, stmt)) {
	if len(a) == 0 {
		return
	}
	kw := func(i int) string {
		if i < len(a) {
			return a[i].upper()
		}
		return ""
	}
	whole := s.toks
	switch kw(0) {
	case "ADD":
		i := 1
		if kw(i) == "COLUMN" {
			i++
		} else if constraintWords[kw(i)] {
			if kw(i) == "CONSTRAINT" {
				i += 2
			}
			switch kw(i) {
			case "CHECK":
				if !l.d.impl().caps().checkNotValid || !containsKW(a, "VALID") {
					add("check-without-not-valid", s)
				}
			case "FOREIGN":
				if !l.d.impl().caps().notValid || !containsKW(a, "VALID") {
					add("foreign-key-without-not-valid", s)
				}
			case "UNIQUE", "PRIMARY":
				if !containsKW(a, "USING") {
					add("unique-constraint-without-index", s)
				}
				if !online(whole) {
					add("index-not-online", s)
				}
			case "INDEX", "KEY", "FULLTEXT", "SPATIAL":
				if !online(whole) {
					add("index-not-online", s)
				}
			}
			return
		}
		// ADD [COLUMN] [IF NOT EXISTS] name type ...
		if seq(a, i, "IF", "NOT", "EXISTS") {
			i += 3
		}
		rest := a[min(i+1, len(a)):]
		notNull, def := false, false
		for j := range rest {
			if rest[j].upper() == "NOT" && j+1 < len(rest) && rest[j+1].upper() == "NULL" {
				notNull = true
			}
			if rest[j].upper() == "DEFAULT" || (rest[j].upper() == "AS" && j > 0) || rest[j].upper() == "GENERATED" {
				def = true
				if hasVolatile(l.d, rest[j+1:]) {
					add("volatile-default", s)
				}
			}
			if rest[j].upper() == "REFERENCES" {
				add("foreign-key-without-not-valid", s)
			}
		}
		if notNull && !def && !containsKW(rest, "AUTO_INCREMENT") && !containsKW(rest, "IDENTITY") {
			add("add-column-not-null-without-default", s)
		}
	case "DROP":
		if constraintWords[kw(1)] || kw(1) == "DEFAULT" {
			return
		}
		if !l.contract {
			add("drop-column", s)
		}
	case "RENAME":
		switch kw(1) {
		case "TO", "AS":
			add("rename-table", s)
		case "INDEX", "KEY", "CONSTRAINT":
		default:
			add("rename-column", s)
		}
	case "ALTER":
		i := 1
		if kw(i) == "COLUMN" {
			i++
		}
		i++ // column name
		switch {
		case kw(i) == "TYPE" || seq(a, i, "SET", "DATA", "TYPE"):
			add("change-column-type", s)
		case seq(a, i, "SET", "NOT", "NULL"):
			add("set-not-null", s)
		}
	case "MODIFY":
		add("change-column-type", s)
	case "CHANGE":
		i := 1
		if kw(i) == "COLUMN" {
			i++
		}
		if i+1 < len(a) && a[i].name() != a[i+1].name() {
			add("rename-column", s)
		}
		add("change-column-type", s)
	}
}

// hasVolatile reports a call of a volatile function in t (up to the next
// keyword that ends a column definition is not tracked: any call in the
// rest of the action counts).
func hasVolatile(d Dialect, t []token) bool {
	for i := 0; i+1 < len(t); i++ {
		if t[i].kind == tokIdent && t[i+1].text == "(" && slices.Contains(d.impl().caps().volatile, up(t, i)) {
			return true
		}
	}
	return false
}

// up is the keyword at i, or "" past the end.
func up(t []token, i int) string {
	if i >= 0 && i < len(t) {
		return t[i].upper()
	}
	return ""
}
