//go:build !unix

package rollout

// lockFile is a no-op where flock is missing: the FileStore then protects
// only writers within one process (its mutex).
func lockFile(path string) (func(), error) { return func() {}, nil }
