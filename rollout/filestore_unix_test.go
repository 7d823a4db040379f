//go:build unix

package rollout_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/rollout"
)

// A FileStore trusts only what its user alone can write: a shared
// directory, a planted lock symlink or a planted state file would let
// another user choose the state a rollout resumes from.
func TestFileStoreRefusesSharedAndPlantedFiles(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []os.FileMode{0o777, 0o770, 0o702} {
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: dir}); err == nil || !strings.Contains(err.Error(), "writable by its group or others") {
			t.Errorf("directory mode %v: %v, want a refusal", mode, err)
		}
	}
	if os.Geteuid() == 0 {
		dir := t.TempDir()
		if err := os.Chown(dir, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		if _, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: dir}); err == nil || !strings.Contains(err.Error(), "belongs to uid 4242") {
			t.Errorf("a directory of another user: %v, want a refusal", err)
		}
	}

	dir := t.TempDir()
	s := mustFileStore(t, dir)
	// A planted lock symlink: Save must not create or lock its target.
	target := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "planted.lock")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, "planted", 0, []byte(`{}`)); err == nil {
		t.Error("Save followed a planted lock symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the symlink's target changed: %q", b)
	}
	// A planted state symlink, and a state file others may write.
	elsewhere := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(elsewhere, []byte(`{"revision":1,"state":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(dir, "linked.json")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(ctx, "linked"); err == nil {
		t.Error("Load followed a planted state symlink")
	}
	shared := filepath.Join(dir, "shared.json")
	if err := os.WriteFile(shared, []byte(`{"revision":1,"state":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(ctx, "shared"); err == nil || !strings.Contains(err.Error(), "writable by its group or others") {
		t.Errorf("a world-writable state file: %v, want a refusal", err)
	}
	if os.Geteuid() == 0 {
		foreign := filepath.Join(dir, "foreign.json")
		if err := os.WriteFile(foreign, []byte(`{"revision":1,"state":{}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(foreign, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Load(ctx, "foreign"); err == nil || !strings.Contains(err.Error(), "belongs to uid 4242") {
			t.Errorf("a state file of another user: %v, want a refusal", err)
		}
	}
}
