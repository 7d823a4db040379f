package migrate_test

import (
	"testing"

	"github.com/batonhq/baton/migrate"
)

// A RawSQL trigger whose body holds semicolons, nested BEGIN ... END and
// IF ... END IF must reach the database as one statement.
func TestRawSQLTriggerBody(t *testing.T) {
	ctx := boundedCtx(t)
	for _, d := range dialects() {
		if d == migrate.PostgreSQL {
			continue // PostgreSQL bodies are dollar-quoted strings: nothing to split
		}
		t.Run(d.String(), func(t *testing.T) {
			db := openDB(t, d)
			const table, trig, prefix = "mt_raw_trig", "mt_raw_trig_bi", "mt_raw_"
			cleanup := func() {
				_, _ = db.Exec("DROP TABLE IF EXISTS " + table)
				for _, s := range []string{"migrations", "backfill", "instances", "observed", "saved", "locks", "guard"} {
					_, _ = db.Exec("DROP TABLE IF EXISTS " + prefix + s)
				}
			}
			cleanup()
			t.Cleanup(cleanup)
			create := "CREATE TABLE " + table + " (id INT PRIMARY KEY, a INT, b INT, c VARCHAR(10));\n"
			body := "CREATE TRIGGER " + trig + " BEFORE INSERT ON " + table + " FOR EACH ROW BEGIN\n" +
				"  IF NEW.a IS NULL THEN SET NEW.a = 1; END IF;\n" +
				"  BEGIN SET NEW.b = 2; END;\n" +
				"  SET NEW.c = CASE WHEN NEW.a = 1 THEN 'one' ELSE 'other' END;\n" +
				"END;"
			check := func(id int, a, b int, c string) {
				t.Helper()
				var ga, gb int
				var gc string
				if err := db.QueryRow("SELECT a, b, c FROM "+table+" WHERE id = ?", id).Scan(&ga, &gb, &gc); err != nil {
					t.Fatal(err)
				}
				if ga != a || gb != b || gc != c {
					t.Fatalf("row %d: %d %d %q, want %d %d %q", id, ga, gb, gc, a, b, c)
				}
			}
			if d == migrate.SQLite { // SQLite has no IF or nested blocks; its body is a list of statements
				body = "CREATE TRIGGER " + trig + " AFTER INSERT ON " + table + " BEGIN\n" +
					"  UPDATE " + table + " SET b = 2 WHERE id = NEW.id;\n" +
					"  UPDATE " + table + " SET c = CASE WHEN NEW.a = 1 THEN 'one' ELSE 'other' END WHERE id = NEW.id;\n" +
					"END;"
			}
			m := &migrate.Migration{Name: "mt_raw_trig", Operations: []migrate.Operation{
				migrate.RawSQL{Up: create + body, Down: "DROP TABLE " + table},
			}}
			r, err := migrate.New(db, m, migrate.Options{Dialect: d, StateTablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("INSERT INTO " + table + " (id, a) VALUES (1, 1)"); err != nil {
				t.Fatal(err)
			}
			check(1, 1, 2, "one")
			if d == migrate.MySQL {
				if _, err := db.Exec("INSERT INTO " + table + " (id) VALUES (2)"); err != nil {
					t.Fatal(err)
				}
				check(2, 1, 2, "one")
			}
		})
	}
}
