package migrate_test

import (
	"context"
	"testing"
	"time"

	"github.com/batonhq/baton/migrate"
)

// TestBatchFailingAtCommitIsRedone: one batch fails once as it commits (a
// deferred constraint trigger on PostgreSQL; a trigger that signals after
// the batch's UPDATE on MariaDB, counting in a non-transactional table so
// that it fails only once). Backfill stops with the error; called again it
// resumes from the checkpoint, which must not have moved past the failed
// batch: 0 rows are left unfilled. A checkpoint committed before (or apart
// from) its batch leaves the failed batch's rows NULL for ever.
func TestBatchFailingAtCommitIsRedone(t *testing.T) {
	for _, d := range dialects() {
		if d == migrate.SQLite {
			continue // no non-transactional state a trigger could count in
		}
		t.Run(d.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			const seeded, failAt = 2000, 1050
			ctl := "mt_cf_ctl_" + suffix()
			f := newFixture(t, d, "mt_cf", seeded, ctl)
			db, table, prefix, name := f.db, f.table, f.prefix, f.name
			var ddl []string
			switch d {
			case migrate.PostgreSQL:
				ddl = []string{
					`CREATE SEQUENCE "` + ctl + `"`,
					`CREATE FUNCTION "` + ctl + `"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id = ` + "1050" + ` AND NEW.first_name IS NOT NULL AND nextval('"` + ctl + `"') = 1 THEN
    RAISE EXCEPTION 'planted failure at commit';
  END IF;
  RETURN NEW;
END $$`,
					`CREATE CONSTRAINT TRIGGER "` + ctl + `" AFTER UPDATE ON "` + table + `" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "` + ctl + `"()`,
				}
				t.Cleanup(func() {
					_, _ = db.Exec(`DROP SEQUENCE IF EXISTS "` + ctl + `"`)
					_, _ = db.Exec(`DROP FUNCTION IF EXISTS "` + ctl + `"() CASCADE`)
				})
			case migrate.MySQL:
				ddl = []string{
					"CREATE TABLE `" + ctl + "` (n INT NOT NULL) ENGINE=MyISAM",
					"INSERT INTO `" + ctl + "` VALUES (0)",
					"CREATE TRIGGER `" + ctl + "_t` AFTER UPDATE ON `" + table + "` FOR EACH ROW BEGIN\n" +
						"  IF NEW.id = 1050 AND NEW.first_name IS NOT NULL THEN\n" +
						"    UPDATE `" + ctl + "` SET n = n + 1;\n" +
						"    IF (SELECT n FROM `" + ctl + "`) = 1 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'planted failure after the batch'; END IF;\n" +
						"  END IF;\nEND",
				}
			}
			r, err := migrate.New(db, splitName(d, table, name), migrate.Options{StateTablePrefix: prefix, BatchSize: 100, MaxBatchSize: 100, DDLAttempts: 2})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			for _, s := range ddl {
				if _, err := db.Exec(s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			if err := r.Backfill(ctx); err == nil {
				t.Fatal("Backfill passed the planted failure")
			} else {
				t.Logf("first Backfill: %v", err)
			}
			var filledBefore int
			if err := db.QueryRow("SELECT count(*) FROM "+qi(d, table)+" WHERE id >= "+ph(d, 1)+" AND first_name IS NOT NULL", failAt-49).Scan(&filledBefore); err != nil {
				t.Fatal(err)
			}
			if filledBefore != 0 {
				t.Fatalf("%d rows of the failed batch and after were filled although it failed", filledBefore)
			}
			if err := r.Backfill(ctx); err != nil {
				t.Fatalf("resumed Backfill: %v", err)
			}
			if bad, total := inconsistent(t, db, d, table, true); bad != 0 || total != seeded {
				t.Fatalf("after resuming: %d of %d rows unfilled or inconsistent", bad, total)
			}
		})
	}
}
