package rollout

import (
	"io/fs"
	"os"
)

// checkPrivate is a no-op on Windows: access is governed by ACLs, which
// the FileStore does not inspect (see its Known limits).
func checkPrivate(string, fs.FileInfo) error { return nil }

// openNoFollow opens path; Windows has no O_NOFOLLOW.
func openNoFollow(path string, flag int) (*os.File, error) {
	return os.OpenFile(path, flag, 0o600)
}

// lockFile is a no-op where flock is missing: the FileStore then protects
// only writers within one process (its mutex).
func lockFile(string) (func(), error) { return func() {}, nil }
