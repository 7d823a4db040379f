package migrate_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"

	"github.com/batonhq/baton/migrate"
)

// backfillChild is the child process of TestKilledRunnerResumes: it runs a
// slow backfill and prints one line per committed batch until it is killed.
func backfillChild() int {
	d, err := migrate.ParseDialect(os.Getenv("MIGRATE_DIALECT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	driver := map[migrate.Dialect]string{migrate.PostgreSQL: "pgx", migrate.MySQL: "mysql", migrate.SQLite: "sqlite"}[d]
	db, err := sql.Open(driver, os.Getenv("MIGRATE_DSN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer db.Close()
	opts := migrate.Options{
		StateTablePrefix: os.Getenv("MIGRATE_PREFIX"),
		BatchSize:        50,
		MaxBatchSize:     50,
		Throttle:         20 * time.Millisecond,
		LeaseTTL:         time.Second,
		OnProgress: func(p migrate.Progress) {
			fmt.Printf("batch %d %d\n", p.LastKey, p.Rows)
		},
	}
	r, err := migrate.New(db, splitName(d, os.Getenv("MIGRATE_TABLE"), os.Getenv("MIGRATE_NAME")), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := r.Backfill(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("done")
	return 0
}
