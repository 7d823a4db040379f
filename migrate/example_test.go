package migrate_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite"

	"github.com/batonhq/baton/migrate"
)

// A rename done the expand-contract way on SQLite: old code keeps writing
// "login" until Complete, new code writes "username", triggers keep both
// equal, and the backfill fills the rows that existed before.
func ExampleRunner() {
	dir, _ := os.MkdirTemp("", "migrate-example")
	defer os.RemoveAll(dir)
	db, _ := sql.Open("sqlite", "file:"+filepath.Join(dir, "app.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	defer db.Close()
	ctx := context.Background()
	db.Exec(`CREATE TABLE accounts (id INTEGER PRIMARY KEY, login TEXT)`)
	db.Exec(`INSERT INTO accounts (login) VALUES ('ada'), ('grace')`)

	m := &migrate.Migration{Name: "rename_login", Operations: []migrate.Operation{
		migrate.RenameColumn{Table: "accounts", From: "login", To: "username"},
	}}
	r, err := migrate.New(db, m, migrate.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, step := range []func(context.Context) error{r.Start, r.Backfill, r.SwitchReads} {
		if err := step(ctx); err != nil {
			fmt.Println(err)
			return
		}
	}
	// An old-version write, synced to the new column by the trigger.
	db.Exec(`INSERT INTO accounts (login) VALUES ('linus')`)
	var names string
	db.QueryRow(`SELECT group_concat(username, ',') FROM accounts`).Scan(&names)
	p, _ := migrate.CurrentPhase(ctx, db, migrate.Options{}, "rename_login")
	fmt.Println(names, p, p.ReadNew())

	if err := r.Complete(ctx); err != nil {
		fmt.Println(err)
		return
	}
	p, _ = r.Phase(ctx)
	fmt.Println(p)
	// Output:
	// ada,grace,linus read_new true
	// complete
}

func ExampleLintSQL() {
	for _, f := range migrate.LintSQL(migrate.PostgreSQL, `
SET lock_timeout = '1s';
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
CREATE INDEX CONCURRENTLY users_email ON users (email);`) {
		fmt.Println(f.Line, f.Name)
		fmt.Println(f.Alternative)
	}
	// Output:
	// 3 set-not-null
	// SetNotNull: CHECK (col IS NOT NULL) NOT VALID, VALIDATE without blocking writes, then SET NOT NULL which skips the scan
}

func ExampleRegister() {
	dir, _ := os.MkdirTemp("", "migrate-example")
	defer os.RemoveAll(dir)
	db, _ := sql.Open("sqlite", "file:"+filepath.Join(dir, "app.db")+"?_pragma=busy_timeout(5000)")
	defer db.Close()
	// At process start: this instance runs version 1.4.0 until it exits.
	in, err := migrate.Register(context.Background(), db, "1.4.0", migrate.RegistryOptions{ID: "web-1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer in.Close()
	fmt.Println(in.ID())
	// Output: web-1
}
