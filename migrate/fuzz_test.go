package migrate_test

import (
	"testing"

	"github.com/batonhq/baton/migrate"
)

// FuzzParse: no migration file makes Parse, Validate or Lint panic, and a
// migration that validates for a dialect lints without panicking too.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"name: m\nversion: \"2\"\noperations:\n  - add_column: {table: users, column: {name: email, type: text, default: \"'x'\"}}\n",
		"name: m\noperations:\n  - rename_column: {table: users, from: login, to: username}\n  - change_type: {table: t, column: a, to: b, type: bigint, up: {mysql: \"CAST(a AS SIGNED)\"}}\n",
		"name: m\noperations:\n  - transform: {table: t, key: [a, b], add: [{name: n, type: text, not_null: true}], up: {n: o}, down: {o: n}, drop: [o]}\n",
		"name: m\noperations:\n  - sql: {up: \"CREATE INDEX i ON t (a); ALTER TABLE t ADD CHECK (a > 0)\", down: \"DROP INDEX i\"}\n",
		`{"name": "m", "operations": [{"drop_table": {"table": "x"}}]}`,
		"name: m\noperations:\n  - add_column: {table: t, column: {name: c, type: \"text, DROP COLUMN s\"}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := migrate.Parse(data)
		if err != nil {
			return
		}
		for _, d := range []migrate.Dialect{migrate.PostgreSQL, migrate.MySQL, migrate.SQLite} {
			if m.Validate(d) == nil {
				_ = migrate.Lint(m, d)
			}
		}
	})
}

// FuzzLintSQL: the lint tokenizer and statement splitter never panic and
// every finding points at a line of the text.
func FuzzLintSQL(f *testing.F) {
	for _, s := range []string{
		"ALTER TABLE t ADD COLUMN a int NOT NULL; CREATE INDEX i ON t (a);",
		"CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.a = 1; END; DROP TABLE t",
		"SELECT $tag$ ; $tag$, E'\\'', 'it''s' -- ; \n /* ; */ # ;\n ALTER TABLE `a``b` RENAME COLUMN x TO y",
		"ALTER TABLE \"t\" ALTER COLUMN c TYPE bigint, ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES b (c) NOT VALID",
		"UPDATE t SET a = (SELECT 1); PRAGMA busy_timeout = 5; SET lock_timeout = '1s'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		lines := 1
		for _, c := range sql {
			if c == '\n' {
				lines++
			}
		}
		for _, d := range []migrate.Dialect{migrate.PostgreSQL, migrate.MySQL, migrate.SQLite} {
			for _, fd := range migrate.LintSQL(d, sql) {
				if fd.Line < 1 || fd.Line > lines {
					t.Fatalf("%s: finding %s at line %d of %d", d, fd.Name, fd.Line, lines)
				}
			}
		}
	})
}
