package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/batonhq/baton/internal/atomicfile"
)

// FileStoreOptions configure NewFileStore. Dir is required.
type FileStoreOptions struct {
	// Dir holds one <id>.json file per rollout (and a <id>.lock file). It is
	// created with mode 0700 if missing; an existing one must belong to
	// this process's user and be writable by no one else.
	Dir string
}

// FileStore is the default Store: one JSON file per rollout, replaced
// atomically (temp file, fsync, rename, directory fsync), so a crash
// leaves either the old or the new state, never a torn one. Revisions are
// checked under an flock on Unix, so runners in several processes sharing
// the directory do not overwrite each other.
//
// On Unix it trusts only what its user alone can write: NewFileStore
// refuses a directory that is group- or world-writable or that another
// user owns, the lock and state files are opened without following a
// symbolic link, and a state file that another user owns or may write is
// refused, since a planted one would resume a rollout from a state nobody
// recorded. Its zero value is not usable.
type FileStore struct {
	dir string
	mu  sync.Mutex // serializes this process's writers; flock covers others
}

type fileDoc struct {
	Revision int64           `json:"revision"`
	State    json.RawMessage `json:"state"`
}

// NewFileStore creates the directory if needed and returns the store.
func NewFileStore(o FileStoreOptions) (*FileStore, error) {
	if o.Dir == "" {
		return nil, errors.New("rollout: FileStoreOptions.Dir is empty")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("rollout: file store: %w", err)
	}
	fi, err := os.Stat(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("rollout: file store: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("rollout: file store: %s is not a directory", o.Dir)
	}
	if err := checkPrivate(o.Dir, fi); err != nil {
		return nil, fmt.Errorf("rollout: file store: refusing directory: %w", err)
	}
	return &FileStore{dir: o.Dir}, nil
}

func (s *FileStore) path(id string) string { return filepath.Join(s.dir, id+".json") }

// Load implements Store.
func (s *FileStore) Load(ctx context.Context, id string) ([]byte, int64, error) {
	if err := ValidID(id); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	return s.read(id)
}

// MaxStateFile bounds a state file the FileStore reads (a state keeps at
// most MaxDecisions decisions per step, so a real one is far smaller).
const MaxStateFile = 16 << 20

func (s *FileStore) read(id string) ([]byte, int64, error) {
	f, err := openNoFollow(s.path(id), os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, s.path(id))
	}
	if err != nil {
		return nil, 0, fmt.Errorf("rollout: file store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("rollout: file store: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("rollout: file store: %s is not a regular file", s.path(id))
	}
	if err := checkPrivate(s.path(id), fi); err != nil {
		return nil, 0, fmt.Errorf("rollout: file store: refusing state file: %w", err)
	}
	if fi.Size() > MaxStateFile {
		return nil, 0, fmt.Errorf("rollout: file store: %s is %d bytes, more than %d", s.path(id), fi.Size(), MaxStateFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxStateFile+1))
	if err != nil {
		return nil, 0, fmt.Errorf("rollout: file store: %w", err)
	}
	var d fileDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, 0, fmt.Errorf("rollout: file store: %s is corrupt: %w", s.path(id), err)
	}
	return d.State, d.Revision, nil
}

// Save implements Store.
func (s *FileStore) Save(ctx context.Context, id string, prev int64, data []byte) (int64, error) {
	if err := ValidID(id); err != nil {
		return 0, err
	}
	if !json.Valid(data) {
		return 0, errors.New("rollout: file store: data is not a JSON document")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := lockFile(filepath.Join(s.dir, id+".lock"))
	if err != nil {
		return 0, fmt.Errorf("rollout: file store: lock: %w", err)
	}
	defer unlock()
	_, cur, err := s.read(id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	if cur != prev {
		return 0, fmt.Errorf("%w: %s is at revision %d, the writer read %d", ErrConflict, id, cur, prev)
	}
	b, err := json.MarshalIndent(fileDoc{Revision: prev + 1, State: data}, "", "  ")
	if err != nil {
		return 0, err
	}
	if err := atomicfile.WriteFile(s.path(id), b); err != nil {
		return 0, fmt.Errorf("rollout: file store: %w", err)
	}
	return prev + 1, nil
}
