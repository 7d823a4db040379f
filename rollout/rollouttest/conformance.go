package rollouttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
)

// TestStore checks that a rollout.Store keeps the contract the runner
// relies on: not-found, compare-and-swap on revisions (also under
// concurrent writers), ids kept apart, rejected bad ids, documents returned
// byte for byte equal as JSON. newStore may return the same store each
// time; ids are unique per call so a shared database is fine.
func TestStore(t *testing.T, newStore func(t *testing.T) rollout.Store) {
	ctx := context.Background()
	prefix := fmt.Sprintf("conf-%d", time.Now().UnixNano())
	id := func(name string) string { return prefix + "-" + name }

	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t)
		_, _, err := s.Load(ctx, id("missing"))
		if !errors.Is(err, rollout.ErrNotFound) {
			t.Fatalf("Load of a missing id: got %v, want ErrNotFound", err)
		}
	})

	t.Run("CompareAndSwap", func(t *testing.T) {
		s := newStore(t)
		k := id("cas")
		rev, err := s.Save(ctx, k, 0, []byte(`{"n":1}`))
		if err != nil || rev != 1 {
			t.Fatalf("first Save: rev %d, err %v; want 1, nil", rev, err)
		}
		if _, err := s.Save(ctx, k, 0, []byte(`{"n":99}`)); !errors.Is(err, rollout.ErrConflict) {
			t.Fatalf("second create: got %v, want ErrConflict", err)
		}
		rev, err = s.Save(ctx, k, 1, []byte(`{"n":2}`))
		if err != nil || rev != 2 {
			t.Fatalf("Save at 1: rev %d, err %v; want 2, nil", rev, err)
		}
		if _, err := s.Save(ctx, k, 1, []byte(`{"n":98}`)); !errors.Is(err, rollout.ErrConflict) {
			t.Fatalf("stale Save: got %v, want ErrConflict", err)
		}
		if _, err := s.Save(ctx, k, 7, []byte(`{"n":97}`)); !errors.Is(err, rollout.ErrConflict) {
			t.Fatalf("Save at a future revision: got %v, want ErrConflict", err)
		}
		data, rev, err := s.Load(ctx, k)
		if err != nil || rev != 2 {
			t.Fatalf("Load: rev %d, err %v; want 2, nil", rev, err)
		}
		assertJSON(t, data, `{"n":2}`)
	})

	t.Run("IDsApart", func(t *testing.T) {
		s := newStore(t)
		a, b := id("a"), id("b")
		if _, err := s.Save(ctx, a, 0, []byte(`{"x":"a"}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Save(ctx, b, 0, []byte(`{"x":"b"}`)); err != nil {
			t.Fatal(err)
		}
		da, _, err := s.Load(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		assertJSON(t, da, `{"x":"a"}`)
	})

	t.Run("LargeDocument", func(t *testing.T) {
		s := newStore(t)
		doc, _ := json.Marshal(map[string]string{"big": strings.Repeat("décision ", 20000)})
		k := id("large")
		if _, err := s.Save(ctx, k, 0, doc); err != nil {
			t.Fatal(err)
		}
		got, _, err := s.Load(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		assertJSON(t, got, string(doc))
	})

	t.Run("BadIDs", func(t *testing.T) {
		s := newStore(t)
		for _, bad := range []string{"", "../escape", "a/b", "a b", "x'; DROP TABLE t; --", strings.Repeat("x", 200)} {
			if _, err := s.Save(ctx, bad, 0, []byte(`{}`)); !errors.Is(err, rollout.ErrInvalidID) {
				t.Errorf("Save(%q): got %v, want ErrInvalidID", bad, err)
			}
			if _, _, err := s.Load(ctx, bad); !errors.Is(err, rollout.ErrInvalidID) {
				t.Errorf("Load(%q): got %v, want ErrInvalidID", bad, err)
			}
		}
	})

	t.Run("ConcurrentWriters", func(t *testing.T) {
		s := newStore(t)
		k := id("race")
		if _, err := s.Save(ctx, k, 0, []byte(`{"n":0}`)); err != nil {
			t.Fatal(err)
		}
		const writers, rounds = 4, 10
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 0; r < rounds; r++ {
					data, rev, err := s.Load(ctx, k)
					if err != nil {
						errs <- err
						return
					}
					var d struct{ N int }
					if err := json.Unmarshal(data, &d); err != nil {
						errs <- err
						return
					}
					next, _ := json.Marshal(map[string]int{"n": d.N + 1})
					_, err = s.Save(ctx, k, rev, next)
					switch {
					case err == nil:
						mu.Lock()
						wins++
						mu.Unlock()
					case errors.Is(err, rollout.ErrConflict):
					default:
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		data, rev, err := s.Load(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		var d struct{ N int }
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatal(err)
		}
		// Every successful Save incremented exactly once: no lost update.
		if d.N != wins || rev != int64(wins)+1 {
			t.Fatalf("after %d successful saves: n=%d revision=%d (lost or doubled updates)", wins, d.N, rev)
		}
		if wins == 0 {
			t.Fatal("no writer succeeded")
		}
	})
}

func assertJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("stored document is not JSON: %v (%q)", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("stored document changed: got %s, want %s", gb, wb)
	}
}
