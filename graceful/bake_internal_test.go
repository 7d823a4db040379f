package graceful

import (
	"context"
	"net"
	"testing"
	"time"
)

// Shutdown during a bake, while the new process exits: bake's select may
// pick the exit (both cases are ready here, so each round is a coin toss
// between them), and resuming then would leave nobody to finish the drain
// Shutdown left to the handoff. Shutdown must return whichever it picks.
func TestShutdownWhileChildExitsInBake(t *testing.T) {
	for i := range 20 {
		u, err := New(Options{BakeWindow: time.Minute, DrainTimeout: time.Second, Executable: "/bin/true", Args: []string{}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := u.Listen(ctx, "tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if err := u.Ready(ctx); err != nil {
			t.Fatal(err)
		}
		ours, theirs := net.Pipe()
		c := &child{pid: -1, exited: make(chan struct{}), control: ours}
		close(c.exited)
		// The state a handoff with a bake window leaves behind.
		u.mu.Lock()
		u.state, u.handedOff, u.child = StateBaking, true, c
		u.wg.Add(1)
		u.mu.Unlock()

		shut := make(chan error, 1)
		go func() { shut <- u.Shutdown(ctx) }()
		<-u.stopping
		go u.afterHandoff(c, true)
		select {
		case err := <-shut:
			if err != nil {
				t.Fatalf("round %d: Shutdown: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Shutdown never returned; state %v", i, u.State())
		}
		if st := u.State(); st != StateStopped {
			t.Errorf("round %d: state %v after Shutdown", i, st)
		}
		theirs.Close()
		u.Close()
	}
}
