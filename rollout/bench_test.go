package rollout_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/rollouttest"
)

// BenchmarkFileStoreSave measures one durable transition in the FileStore
// (temp file, fsync, rename, directory fsync, under flock).
func BenchmarkFileStoreSave(b *testing.B) {
	s, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	benchSave(b, s)
}

// BenchmarkSQLiteStoreSave measures one transition in a SQLite SQLStore.
func BenchmarkSQLiteStoreSave(b *testing.B) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(b.TempDir(), "s.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s, err := rollout.NewSQLStore(context.Background(), db, rollout.SQLStoreOptions{Dialect: rollout.SQLite})
	if err != nil {
		b.Fatal(err)
	}
	benchSave(b, s)
}

func benchSave(b *testing.B, s rollout.Store) {
	ctx := context.Background()
	doc := []byte(`{"id":"bench","phase":"running","steps":[{"name":"a","status":"succeeded"},{"name":"b","status":"running","progress":3}]}`)
	var rev int64
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if rev, err = s.Save(ctx, "bench", rev, doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRolloutTenSteps runs a plan of ten set-weight steps on a
// FileStore: the whole cost of the engine per step (about three durable
// writes: started, decision, finished).
func BenchmarkRolloutTenSteps(b *testing.B) {
	w := &rollouttest.Weights{Recorder: &rollouttest.Recorder{}}
	steps := make([]rollout.Step, 10)
	for i := range steps {
		steps[i] = rollout.SetWeight(w, uint32(i)*1000)
	}
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		r, err := rollout.New(ctx, rollout.Plan{ID: fmt.Sprintf("bench-%d", n), Steps: steps}, rollout.Options{Store: store})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Run(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
