package migratetest

import "github.com/batonhq/baton/migrate"

// SplitName returns the example migration used across baton's tests,
// benchmarks and examples, and a template for a column split: a Transform on
// table that adds first_name and last_name (VARCHAR(200)), fills them from
// name split at the first space (last_name is empty when there is none),
// writes name back from them as "first last" for old code while both
// versions run, and drops name on Complete. The expressions are given for
// PostgreSQL, MySQL/MariaDB and SQLite.
//
// The migration's name is the given name and its Version is empty: set it to
// the application version whose code reads the new columns, so that Complete
// waits for older instances to be gone.
func SplitName(table, name string) *migrate.Migration {
	return &migrate.Migration{
		Name: name,
		Operations: []migrate.Operation{migrate.Transform{
			Table: table,
			Add:   []migrate.Column{{Name: "first_name", Type: "VARCHAR(200)"}, {Name: "last_name", Type: "VARCHAR(200)"}},
			Up: map[string]migrate.Expr{
				"first_name": {
					PostgreSQL: `split_part(name, ' ', 1)`,
					MySQL:      `SUBSTRING_INDEX(name, ' ', 1)`,
					SQLite:     `CASE WHEN instr(name, ' ') > 0 THEN substr(name, 1, instr(name, ' ') - 1) ELSE name END`,
				},
				"last_name": {
					PostgreSQL: `CASE WHEN strpos(name, ' ') > 0 THEN substr(name, strpos(name, ' ') + 1) ELSE '' END`,
					MySQL:      `CASE WHEN LOCATE(' ', name) > 0 THEN SUBSTRING(name, LOCATE(' ', name) + 1) ELSE '' END`,
					SQLite:     `CASE WHEN instr(name, ' ') > 0 THEN substr(name, instr(name, ' ') + 1) ELSE '' END`,
				},
			},
			Down: map[string]migrate.Expr{
				"name": {
					SQL:   `CASE WHEN last_name = '' THEN first_name ELSE first_name || ' ' || last_name END`,
					MySQL: `CASE WHEN last_name = '' THEN first_name ELSE CONCAT(first_name, ' ', last_name) END`,
				},
			},
			Drop: []string{"name"},
		}},
	}
}
