package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"testing"

	"github.com/batonhq/baton/migrate"
)

func hasColumn(t *testing.T, db *sql.DB, d migrate.Dialect, table, col string) bool {
	t.Helper()
	var q string
	switch d {
	case migrate.PostgreSQL:
		q = `SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2`
	case migrate.MySQL:
		q = `SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?`
	default:
		q = `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?`
	}
	var n int
	if err := db.QueryRow(q, table, col).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func hasTable(t *testing.T, db *sql.DB, d migrate.Dialect, table string) bool {
	t.Helper()
	_, err := db.Exec("SELECT 1 FROM " + qi(d, table) + " WHERE 1 = 0")
	return err == nil
}

func TestOperationsRollbackThenComplete(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			db := openDB(t, d)
			const users, orgs, legacy, prefix = "mt_ops_users", "mt_ops_orgs", "mt_ops_legacy", "mt_ops_"
			dropAll(t, db, d, prefix, users, orgs, legacy)
			t.Cleanup(func() { dropAll(t, db, d, prefix, users, orgs, legacy) })
			if _, err := db.Exec(usersDDL(d, users)); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("CREATE TABLE " + qi(d, legacy) + " (id INTEGER PRIMARY KEY)"); err != nil {
				t.Fatal(err)
			}
			seed(t, db, d, users, 500)
			ops := []migrate.Operation{
				migrate.CreateTable{Table: orgs, Columns: []migrate.Column{{Name: "id", Type: "BIGINT", PrimaryKey: true}, {Name: "title", Type: "VARCHAR(100)"}}},
				migrate.AddColumn{Table: users, Column: migrate.Column{Name: "nickname", Type: "VARCHAR(50)"}},
				migrate.AddColumn{Table: users, Column: migrate.Column{Name: "active", Type: "INTEGER", NotNull: true, Default: "1"}},
				migrate.AddColumn{Table: users, Column: migrate.Column{Name: "org_id", Type: "BIGINT"}},
				migrate.RenameColumn{Table: users, From: "email", To: "email_address"},
				migrate.CreateIndex{Table: users, Name: "mt_ops_users_email_uq", Columns: []string{"email_address"}, Unique: true},
				migrate.DropTable{Table: legacy},
			}
			if d != migrate.SQLite {
				ops = append(ops,
					migrate.SetNotNull{Table: users, Column: "name"},
					migrate.AddForeignKey{Table: users, Name: "mt_ops_users_org_fk", Columns: []string{"org_id"}, RefTable: orgs, RefColumns: []string{"id"}})
			}
			m := &migrate.Migration{Name: "mt_ops_all", Version: "3", Operations: ops}
			r, err := migrate.New(db, m, migrate.Options{StateTablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			ctx := boundedCtx(t)
			if err := r.Complete(ctx); !errors.Is(err, migrate.ErrPhase) {
				t.Fatalf("Complete before Start: %v", err)
			}
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := r.Start(ctx); err != nil {
				t.Fatalf("second Start is not a no-op: %v", err)
			}
			for _, c := range []string{"nickname", "active", "org_id", "email_address"} {
				if !hasColumn(t, db, d, users, c) {
					t.Fatalf("column %s missing after Start", c)
				}
			}
			// Old code writes email, new code email_address: both stay equal.
			if _, err := db.Exec("INSERT INTO "+qi(d, users)+" (name, email) VALUES ('a b', "+ph(d, 1)+")", "old@x"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("INSERT INTO "+qi(d, users)+" (name, email_address) VALUES ('c d', "+ph(d, 1)+")", "new@x"); err != nil {
				t.Fatal(err)
			}
			if err := r.Backfill(ctx); err != nil {
				t.Fatal(err)
			}
			var diff int
			if err := db.QueryRow("SELECT COUNT(*) FROM " + qi(d, users) + " WHERE email_address IS NULL OR email_address <> email").Scan(&diff); err != nil || diff != 0 {
				t.Fatalf("email/email_address differ in %d rows (%v)", diff, err)
			}
			if err := r.SwitchReads(ctx); err != nil {
				t.Fatal(err)
			}
			if err := r.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if p, _ := r.Phase(ctx); p != migrate.PhaseRolledBack || p.ReadNew() {
				t.Fatalf("phase %q after Rollback", p)
			}
			for _, c := range []string{"nickname", "active", "org_id", "email_address"} {
				if hasColumn(t, db, d, users, c) {
					t.Fatalf("column %s still there after Rollback", c)
				}
			}
			if hasTable(t, db, d, orgs) || !hasTable(t, db, d, legacy) {
				t.Fatal("Rollback: created table kept or contract-only drop applied")
			}
			// Writes through the old schema still work (no trigger left behind).
			if _, err := db.Exec("INSERT INTO " + qi(d, users) + " (name, email) VALUES ('e f', 'after@x')"); err != nil {
				t.Fatal(err)
			}

			// Again, to the end.
			if err := r.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if hasColumn(t, db, d, users, "email") || !hasColumn(t, db, d, users, "email_address") || hasTable(t, db, d, legacy) {
				t.Fatal("Complete did not contract")
			}
			if _, err := db.Exec("INSERT INTO " + qi(d, users) + " (name, email_address) VALUES ('g h', 'after2@x')"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("INSERT INTO " + qi(d, users) + " (name, email_address) VALUES ('i j', 'after2@x')"); err == nil {
				t.Fatal("unique index missing")
			}
			if d != migrate.SQLite {
				if _, err := db.Exec("INSERT INTO " + qi(d, users) + " (name, email_address) VALUES (NULL, 'nn@x')"); err == nil {
					t.Fatal("name accepts NULL after SetNotNull")
				}
				if _, err := db.Exec("INSERT INTO " + qi(d, users) + " (name, email_address, org_id) VALUES ('k l', 'fk@x', 999)"); err == nil {
					t.Fatal("foreign key not enforced")
				}
			}
			if err := r.Rollback(ctx); !errors.Is(err, migrate.ErrPhase) {
				t.Fatalf("Rollback after Complete: %v", err)
			}
		})
	}
}

func TestSecondRunnerWaitsForLock(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			db := openDB(t, d)
			const table, prefix = "mt_lk_users", "mt_lk_"
			dropAll(t, db, d, prefix, table)
			t.Cleanup(func() { dropAll(t, db, d, prefix, table) })
			if _, err := db.Exec(usersDDL(d, table)); err != nil {
				t.Fatal(err)
			}
			seed(t, db, d, table, 300)
			hold := make(chan struct{})
			entered := make(chan struct{}, 1)
			opts := migrate.Options{StateTablePrefix: prefix, BatchSize: 10, MaxBatchSize: 10,
				OnProgress: func(migrate.Progress) {
					select {
					case entered <- struct{}{}:
						<-hold // the first runner stays inside Backfill, holding the lock
					default:
					}
				}}
			r1, err := migrate.New(db, splitName(d, table, "mt_lk_split"), opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx := boundedCtx(t)
			if err := r1.Start(ctx); err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- r1.Backfill(ctx) }()
			<-entered
			waiting := make(chan struct{}, 1)
			log := slog.New(signalHandler{msg: "migrate: waiting for runner lock", c: waiting})
			r2, err := migrate.New(db, splitName(d, table, "mt_lk_split"), migrate.Options{StateTablePrefix: prefix, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithCancel(ctx)
			r2err := make(chan error, 1)
			go func() { r2err <- r2.SwitchReads(cctx) }()
			<-waiting
			cancel()
			if err := <-r2err; !errors.Is(err, migrate.ErrLocked) || !errors.Is(err, context.Canceled) {
				t.Fatalf("second runner: %v, want ErrLocked and context.Canceled", err)
			}
			close(hold)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if err := r2.SwitchReads(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// signalHandler is a slog.Handler that signals c when a record with
// message msg is logged.
type signalHandler struct {
	msg string
	c   chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.c <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }
