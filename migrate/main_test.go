package migrate_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/internal/testchild"
)

func TestMain(m *testing.M) {
	testchild.Register("migrate-backfill", backfillChild)
	// No ignore for database/sql's connectionOpener: every test closes the
	// DBs it opens, and a DB left open shows up here.
	testchild.Main(m, func() int { goleak.VerifyTestMain(m); return 0 })
}
