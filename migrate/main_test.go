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
	goleak.VerifyTestMain(m,
		// database/sql's connection opener and modernc's finalizers outlive tests by design.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}
