package rollout

import "context"

// Store persists rollout states as JSON documents with a revision, so that
// two runners never overwrite each other (compare-and-swap). Implementations
// must be safe for concurrent use; rollouttest.TestStore checks one.
type Store interface {
	// Load returns the document stored for id and its revision, or an
	// error wrapping ErrNotFound.
	Load(ctx context.Context, id string) (data []byte, revision int64, err error)
	// Save stores data for id if the stored revision is prev (0: nothing
	// stored yet) and returns the new revision (prev+1). Otherwise it
	// stores nothing and returns an error wrapping ErrConflict. data is a
	// JSON document. A nil error means the write is durable.
	Save(ctx context.Context, id string, prev int64, data []byte) (revision int64, err error)
}
