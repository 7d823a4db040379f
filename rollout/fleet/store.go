package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/batonhq/baton/rollout"
)

// maxApplied bounds the command keys an envelope remembers.
const maxApplied = 32

// envelope is what the engine holds for one rollout: the state rollout
// saved, its rollout.Store revision (prev+1 on every Save, independent of
// the engine's revisions), the term of the leader that wrote it, and the
// commands whose effect the state already holds, so that a command is
// applied once even when the driver dies before answering it.
type envelope struct {
	Revision int64           `json:"revision"`
	Term     int64           `json:"term"`
	Applied  []string        `json:"applied,omitempty"`
	State    json.RawMessage `json:"state"`
}

type cached struct {
	rev, engineRev int64
	applied        []string
}

// Store is a rollout.Store in the fleet's engine, at Layout.Rollout(id).
// Every Save is fenced by the leadership it was made with: the engine
// applies it only while that leadership holds, so the Save of a deposed
// driver (stopped, cut off, or simply slow) is refused, never applied, and
// fails with an error matching both ErrFenced and rollout.ErrConflict (the
// runner stops driving). A Store without a leadership (Member.StatusStore)
// only loads. The zero value is not usable.
type Store struct {
	e       Engine
	keys    Layout
	lead    Leadership
	timeout time.Duration
	fenced  func()

	mu    sync.Mutex
	cache map[string]cached
}

var _ rollout.Store = (*Store)(nil)

func newStore(e Engine, keys Layout, lead Leadership, timeout time.Duration, fenced func()) *Store {
	return &Store{e: e, keys: keys, lead: lead, timeout: timeout, fenced: fenced, cache: map[string]cached{}}
}

// StatusStore returns a read-only Store: any host can Load a rollout's
// state from it; Save fails with ErrNotLeader.
func (m *Member) StatusStore() *Store { return newStore(m.e, m.keys, nil, m.o.LeaseTTL, nil) }

// ctxKey carries the command whose effect the next Save records.
type ctxKey struct{}

type appliedCommand struct {
	key  string
	used bool
}

// withCommand returns a ctx whose Save records key as applied. rollout
// passes a command's ctx (without its cancellation) to the Save the
// command makes, and to no other.
func withCommand(ctx context.Context, key string) (context.Context, *appliedCommand) {
	c := &appliedCommand{key: key}
	return context.WithValue(ctx, ctxKey{}, c), c
}

// Load implements rollout.Store.
func (s *Store) Load(ctx context.Context, id string) ([]byte, int64, error) {
	if err := rollout.ValidID(id); err != nil {
		return nil, 0, err
	}
	env, doc, err := s.read(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	s.remember(id, cached{rev: env.Revision, engineRev: doc.Revision, applied: env.Applied})
	return env.State, env.Revision, nil
}

// Applied reports whether the stored state of id already holds the effect
// of the command stored at key.
func (s *Store) Applied(ctx context.Context, id, key string) (bool, error) {
	env, _, err := s.read(ctx, id)
	if err != nil {
		return false, err
	}
	return slices.Contains(env.Applied, key), nil
}

func (s *Store) read(ctx context.Context, id string) (envelope, Document, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	doc, err := s.e.Get(ctx, s.keys.Rollout(id))
	if errors.Is(err, ErrNotFound) {
		return envelope{}, Document{}, fmt.Errorf("%w: %s (%w)", rollout.ErrNotFound, id, err)
	}
	if err != nil {
		return envelope{}, Document{}, fmt.Errorf("fleet: loading rollout %s: %w", id, err)
	}
	var env envelope
	if err := json.Unmarshal(doc.Value, &env); err != nil {
		return envelope{}, Document{}, fmt.Errorf("fleet: rollout %s at revision %d is not a fleet state document: %w", id, doc.Revision, err)
	}
	return env, doc, nil
}

func (s *Store) remember(id string, c cached) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache[id] = c
}

// Save implements rollout.Store with one fenced compare-and-swap on the
// engine revision of the document the writer read. rollout saves with a
// context that is never cancelled; the write is bounded by the lease TTL
// instead (past it the leadership is gone anyway).
func (s *Store) Save(ctx context.Context, id string, prev int64, data []byte) (int64, error) {
	if err := rollout.ValidID(id); err != nil {
		return 0, err
	}
	if s.lead == nil {
		return 0, fmt.Errorf("fleet: saving rollout %s: %w (this store only loads)", id, ErrNotLeader)
	}
	if !json.Valid(data) {
		return 0, fmt.Errorf("fleet: saving rollout %s: the state is not a JSON document", id)
	}
	cmd, _ := ctx.Value(ctxKey{}).(*appliedCommand)
	s.mu.Lock()
	c, ok := s.cache[id]
	s.mu.Unlock()
	if !ok || c.rev != prev {
		env, doc, err := s.read(ctx, id)
		switch {
		case errors.Is(err, rollout.ErrNotFound):
			c = cached{}
		case err != nil:
			return 0, err
		default:
			c = cached{rev: env.Revision, engineRev: doc.Revision, applied: env.Applied}
		}
		if c.rev != prev {
			return 0, fmt.Errorf("%w: rollout %s is at revision %d, the writer read %d", rollout.ErrConflict, id, c.rev, prev)
		}
	}
	env := envelope{Revision: prev + 1, Term: s.lead.Term(), Applied: c.applied, State: data}
	if cmd != nil {
		env.Applied = append(slices.Clone(env.Applied), cmd.key)
		if len(env.Applied) > maxApplied {
			env.Applied = env.Applied[len(env.Applied)-maxApplied:]
		}
	}
	b, err := json.Marshal(env)
	if err != nil {
		return 0, fmt.Errorf("fleet: encoding rollout %s: %w", id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rev, err := s.e.Commit(ctx, Txn{Fence: s.lead, Ops: []Op{{Key: s.keys.Rollout(id), Value: b, Prev: c.engineRev}}})
	if err != nil {
		s.mu.Lock()
		delete(s.cache, id)
		s.mu.Unlock()
		switch {
		case errors.Is(err, ErrFenced):
			if s.fenced != nil {
				s.fenced()
			}
			return 0, fmt.Errorf("fleet: saving rollout %s: %w: %w", id, rollout.ErrConflict, err)
		case errors.Is(err, ErrConflict):
			return 0, fmt.Errorf("fleet: saving rollout %s: %w: %w", id, rollout.ErrConflict, err)
		}
		return 0, fmt.Errorf("fleet: saving rollout %s: %w", id, err)
	}
	if cmd != nil {
		cmd.used = true
	}
	s.remember(id, cached{rev: prev + 1, engineRev: rev, applied: env.Applied})
	return prev + 1, nil
}
