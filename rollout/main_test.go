package rollout_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	if os.Getenv(gracefulEnv) != "" {
		os.Exit(gracefulMain())
	}
	if os.Getenv(ptRunnerEnv) != "" {
		os.Exit(ptRunnerMain())
	}
	if os.Getenv(serverEnv) != "" {
		os.Exit(serverMain())
	}
	goleak.VerifyTestMain(m)
}
