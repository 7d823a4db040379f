// Package rollouttest is the test support of package rollout: a fake Clock
// that moves only when told (and says when the runner waits on it), fakes
// of every consumer interface (Upgrader with bake and downgrade, Weights,
// Flags, Migrator, Analyzer, Registry, Target, Surger) that record their
// calls in one shared Recorder, and TestStore, the conformance test a
// custom rollout.Store must pass:
//
//	func TestMyStore(t *testing.T) {
//		rollouttest.TestStore(t, func(t *testing.T) rollout.Store { return newMyStore(t) })
//	}
//
// Recorder.Before lets a test fail a call or hold the runner inside one.
// Nothing here starts goroutines.
package rollouttest
