package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/batonhq/baton/internal/atomicfile"
)

// FileStoreOptions configure NewFileStore. Dir is required.
type FileStoreOptions struct {
	// Dir holds one <id>.json file per rollout (and a <id>.lock file). It is
	// created with mode 0700 if missing.
	Dir string
}

// FileStore is the default Store: one JSON file per rollout, replaced
// atomically (temp file, fsync, rename, directory fsync), so a crash
// leaves either the old or the new state, never a torn one. Revisions are
// checked under an flock on Unix, so runners in several processes sharing
// the directory do not overwrite each other. Its zero value is not usable.
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

func (s *FileStore) read(id string) ([]byte, int64, error) {
	b, err := os.ReadFile(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, s.path(id))
	}
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
