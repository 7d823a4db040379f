package gracefultest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/batonhq/baton/graceful"
	"github.com/batonhq/baton/graceful/gracefultest"
)

// upgrader is what a consumer declares; both the real and the fake fit.
type upgrader interface {
	Upgrade(ctx context.Context) error
	UpgradeWith(ctx context.Context, o graceful.UpgradeOptions) error
	State() graceful.State
}

var (
	_ upgrader = (*graceful.Upgrader)(nil)
	_ upgrader = (*gracefultest.Upgrader)(nil)
)

func TestScript(t *testing.T) {
	var u gracefultest.Upgrader
	u.Script(graceful.ErrUpgradeInProgress, nil)
	ctx := context.Background()
	if err := u.Upgrade(ctx); !errors.Is(err, graceful.ErrUpgradeInProgress) {
		t.Fatalf("first: %v", err)
	}
	if err := u.Upgrade(ctx); err != nil {
		t.Fatalf("second: %v", err)
	}
	if err := u.UpgradeWith(ctx, graceful.UpgradeOptions{Binary: "/releases/v2/app", BakeWindow: time.Minute}); err != nil {
		t.Fatalf("after script: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := u.Upgrade(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if u.Calls() != 3 {
		t.Fatalf("calls %d", u.Calls())
	}
	if o := u.Options(); len(o) != 3 || o[0].Binary != "" || o[2].Binary != "/releases/v2/app" || o[2].BakeWindow != time.Minute {
		t.Fatalf("options recorded: %+v", o)
	}
}

func ExampleUpgrader() {
	var u gracefultest.Upgrader
	u.Script(&graceful.UpgradeError{Path: "/usr/local/bin/app", PID: 42, ExitStatus: 3, Err: graceful.ErrChildExited})
	fmt.Println(u.Upgrade(context.Background()))
	fmt.Println(u.Upgrade(context.Background()), u.State(), u.Calls())
	// Output:
	// upgrade to /usr/local/bin/app (pid 42): graceful: new process exited before ready
	// <nil> ready 2
}
