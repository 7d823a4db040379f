package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout/fleet"
)

// A member's report lives under its lease: the engine deletes it with a
// lost lease, and the Reporter writes it again under the next one.
func TestReportWrittenAgainUnderANewLease(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := b.open(t, b.addr)
		m := join(t, e, namespace(t), "a", "v1")
		r, err := m.ReportApplied("canary/canary")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		key := m.Layout().Applied("a", "canary/canary")
		// reported waits for the report of weight w under the member's
		// current lease, and returns that lease.
		reported := func(w uint32) fleet.Lease {
			t.Helper()
			var l fleet.Lease
			testchild.Eventually(t, fmt.Sprintf("the report of weight %d under the current lease", w), 10*time.Second, 20*time.Millisecond, func() error {
				l, _ = m.Lease()
				d, err := e.Get(ctx, key)
				if err != nil {
					return err
				}
				var a fleet.Applied
				if err := json.Unmarshal(d.Value, &a); err != nil {
					return err
				}
				switch {
				case a.Weight == nil || *a.Weight != w || a.Revision != 7:
					return fmt.Errorf("report %s", d.Value)
				case l == nil || d.Lease != l.ID():
					return fmt.Errorf("report under lease %v, the member's is %v", d.Lease, l)
				}
				return nil
			})
			return l
		}
		w := uint32(300)
		r.Set(fleet.Applied{Revision: 7, Weight: &w})
		first := reported(300)
		if err := first.Revoke(ctx); err != nil {
			t.Fatal(err)
		}
		if second := reported(300); second.ID() == first.ID() {
			t.Fatalf("still lease %v after revoking it", first.ID())
		}
		w2 := uint32(400)
		r.Set(fleet.Applied{Revision: 7, Weight: &w2})
		reported(400)
	})
}
