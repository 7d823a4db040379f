package fleet_test

import (
	"context"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout/fleet"
)

// The console's fleet page lists every live member, this one marked.
func TestRegistryHostsForTheConsole(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ns := namespace(t)
		a := join(t, b.open(t, b.addr), ns, "a", "v1")
		bm := join(t, b.open(t, b.addr), ns, "b", "v2")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := bm.SetState(ctx, fleet.StateReady); err != nil {
			t.Fatal(err)
		}
		hosts, err := a.Registry().Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts) != 2 || hosts[0].Name != "a on test" || !hosts[0].Self || hosts[0].Version != "v1" ||
			hosts[1].Self || hosts[1].Version != "v2" || hosts[1].State != fleet.StateReady || hosts[1].SeenAt.IsZero() {
			t.Fatalf("hosts %+v", hosts)
		}
	})
}
