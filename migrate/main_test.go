package migrate_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv("MIGRATE_HELPER") != "" {
		os.Exit(helperMain())
	}
	// No ignore for database/sql's connectionOpener: every test closes the
	// DBs it opens, and a DB left open shows up here.
	goleak.VerifyTestMain(m)
}
