//go:build unix

package rollout

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkPrivate refuses a directory or file that another user owns or may
// write: its state could be replaced under the runner, and a planted
// document resumes a rollout from a state nobody recorded.
func checkPrivate(path string, fi fs.FileInfo) error {
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s has mode %v: writable by its group or others; chmod go-w it", path, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to this process's uid %d", path, st.Uid, os.Geteuid())
	}
	return nil
}

// openNoFollow opens path without following a symbolic link at its last
// element (a planted link fails with ELOOP instead of reaching its
// target).
func openNoFollow(path string, flag int) (*os.File, error) {
	return os.OpenFile(path, flag|syscall.O_NOFOLLOW, 0o600)
}

// lockFile takes an exclusive flock on path, so that FileStores of several
// processes sharing a directory check revisions one at a time.
func lockFile(path string) (func(), error) {
	f, err := openNoFollow(path, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
