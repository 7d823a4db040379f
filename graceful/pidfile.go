package graceful

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// writePIDFile replaces the PID file atomically so a reader never sees it
// empty or half written.
func writePIDFile(path string) error {
	if path == "" {
		return nil
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".tmp*")
	if err != nil {
		return fmt.Errorf("graceful: PID file %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(strconv.Itoa(os.Getpid()) + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("graceful: PID file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("graceful: PID file %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("graceful: PID file %s: %w", path, err)
	}
	return nil
}
