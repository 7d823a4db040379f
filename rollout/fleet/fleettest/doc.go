// Package fleettest is the test support of package fleet: TestEngine, the
// conformance suite every fleet.Engine must pass (documents and
// compare-and-swap, leases that expire when their holder is cut off,
// elections whose fencing refuses a deposed leader's writes, watches that
// resume from a revision after a disconnect, unreachability reported and
// recovery noticed), and Link, a TCP relay a test cuts to partition one
// engine client from the server:
//
//	func TestConformance(t *testing.T) {
//		fleettest.TestEngine(t, fleettest.Backend{
//			Addr: serverAddr,
//			Open: func(t *testing.T, addr string) fleet.Engine { return openEngine(t, addr) },
//		})
//	}
//
// It imports no engine. Link starts goroutines that Close stops.
package fleettest
