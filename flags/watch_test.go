package flags

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func flagFile(color string) string {
	return "flags:\n  color:\n    type: string\n    variants: {a: " + strconv.Quote(color) + ", b: other}\n    default: a\n"
}

// events subscribes to s and returns a channel of its events.
func events(t testing.TB, s *Store) <-chan Event {
	ch := make(chan Event, 64)
	cancel := s.Subscribe(func(e Event) { ch <- e })
	t.Cleanup(cancel)
	return ch
}

func next(t testing.TB, ch <-chan Event, kind EventKind) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-ch:
			if e.Kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("no event of kind %d within 10s", kind)
		}
	}
}

func watched(t testing.TB, opts Options, body string) (*Store, *FileSource, string) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flags.yaml")
	writeFile(t, path, body)
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	fs, err := NewFileSource(s, FileOptions{Paths: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return s, fs, path
}

// replaceFile writes body aside and renames it over path, as editors and
// config managers do, so that the watcher never reads a half-written file.
// (TestReloadOnWrite and TestReloadRace cover in-place writes.)
func replaceFile(t testing.TB, path, body string) {
	t.Helper()
	writeFile(t, path+".tmp", body)
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func color(s *Store) string { return s.String("color", EvalContext{}, "") }

func TestReloadOnWrite(t *testing.T) {
	s, _, path := watched(t, Options{}, flagFile("red"))
	ch := events(t, s)
	if c := color(s); c != "red" {
		t.Fatalf("initial color %q", c)
	}
	start := time.Now()
	writeFile(t, path, flagFile("blue"))
	e := next(t, ch, EventUpdated)
	t.Logf("write to visible: %v (debounce %v)", time.Since(start), DefaultDebounce)
	if c := color(s); c != "blue" || len(e.Changed) != 1 || e.Changed[0] != "color" || e.Source != DefaultFileSourceName {
		t.Errorf("after write: color %q, event %+v", c, e)
	}
}

func TestReloadOnRenameOver(t *testing.T) {
	s, _, path := watched(t, Options{}, flagFile("red"))
	ch := events(t, s)
	tmp := path + ".tmp"
	writeFile(t, tmp, flagFile("green"))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	next(t, ch, EventUpdated)
	if c := color(s); c != "green" {
		t.Errorf("after rename: %q", c)
	}
	// And again: the watch follows the directory, not the replaced inode.
	writeFile(t, tmp, flagFile("teal"))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	next(t, ch, EventUpdated)
	if c := color(s); c != "teal" {
		t.Errorf("after second rename: %q", c)
	}
}

func TestDeleteAndRecreate(t *testing.T) {
	var mu sync.Mutex
	var rejected []error
	s, _, path := watched(t, Options{OnReject: func(err error) {
		mu.Lock()
		rejected = append(rejected, err)
		mu.Unlock()
	}}, flagFile("red"))
	ch := events(t, s)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	e := next(t, ch, EventRejected)
	if !errors.Is(e.Err, os.ErrNotExist) || color(s) != "red" {
		t.Errorf("missing file: event %+v, color %q", e, color(s))
	}
	replaceFile(t, path, flagFile("blue"))
	next(t, ch, EventUpdated)
	if c := color(s); c != "blue" {
		t.Errorf("after recreate: %q", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rejected) != 1 {
		t.Errorf("%d rejections reported, want 1", len(rejected))
	}
}

func TestBadFileKeepsLastGood(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	var rejected []error
	var mu sync.Mutex
	s, fs, path := watched(t, Options{MeterProvider: mp, OnReject: func(err error) {
		mu.Lock()
		rejected = append(rejected, err)
		mu.Unlock()
	}}, flagFile("red"))
	ch := events(t, s)
	replaceFile(t, path, "flags:\n  color:\n    type: string\n    variants: {a: red}\n    default: nope\n")
	e := next(t, ch, EventRejected)
	var le *LoadError
	if !errors.As(e.Err, &le) || le.File != path || le.Flag != "color" || le.Line != 2 || le.Field != "default" {
		t.Errorf("rejection %v does not name file, flag, line and field", e.Err)
	}
	if c := color(s); c != "red" {
		t.Errorf("last good configuration lost: %q", c)
	}
	if err := fs.Reload(); !errors.As(err, &le) {
		t.Errorf("Reload of the bad file = %v", err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if n := sumMetric(rm, "baton.flags.rejected"); n != 2 {
		t.Errorf("baton.flags.rejected = %d, want 2", n)
	}
	replaceFile(t, path, flagFile("blue"))
	next(t, ch, EventUpdated)
	if c := color(s); c != "blue" {
		t.Errorf("after fix: %q", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rejected) != 2 {
		t.Errorf("%d rejections reported, want 2", len(rejected))
	}
}

func sumMetric(rm metricdata.ResourceMetrics, name string) int64 {
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					n += dp.Value
				}
			}
		}
	}
	return n
}

func TestFirstLoadMustSucceed(t *testing.T) {
	s, _ := newStore(t, Config{})
	dir := t.TempDir()
	if _, err := NewFileSource(s, FileOptions{Paths: []string{dir + "/missing.yaml"}}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	writeFile(t, dir+"/bad.json", "{")
	if _, err := NewFileSource(s, FileOptions{Paths: []string{dir + "/bad.json"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad file: %v", err)
	}
}

// TestReloadRace evaluates from several goroutines while the file is
// rewritten: every evaluation sees one whole configuration (the variant
// and value always agree), which the race detector checks too.
func TestReloadRace(t *testing.T) {
	s, _, path := watched(t, Options{}, flagFile("c0"))
	ch := events(t, s)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad sync.Map
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ec := EvalContext{TargetingKey: "u" + strconv.Itoa(g)}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d := s.StringDetail("color", ec, "")
				if d.Variant != "a" || len(d.Value) < 2 || d.Value[0] != 'c' {
					bad.Store(d.Value, d.Variant)
				}
				s.Flags()
			}
		}()
	}
	for i := 1; i <= 20; i++ {
		writeFile(t, path, flagFile("c"+strconv.Itoa(i)))
		next(t, ch, EventUpdated)
	}
	close(stop)
	within(t, 10*time.Second, "evaluating goroutines to stop", wg.Wait)
	bad.Range(func(k, v any) bool {
		t.Errorf("inconsistent evaluation: value %v variant %v", k, v)
		return true
	})
	if c := color(s); c != "c20" {
		t.Errorf("final color %q", c)
	}
}

// TestSeveralFiles: two files in two directories form one source; a change
// to either reloads both, and a flag moving between them is fine.
func TestSeveralFiles(t *testing.T) {
	a := filepath.Join(t.TempDir(), "a.yaml")
	b := filepath.Join(t.TempDir(), "b.json")
	writeFile(t, a, flagFile("red"))
	writeFile(t, b, `{"flags": {"size": {"variants": {"s": 1, "l": 3}, "default": "s"}}}`)
	s, _ := newStore(t, Config{})
	fs, err := NewFileSource(s, FileOptions{Paths: []string{a, b}, Name: "ab"})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ch := events(t, s)
	if color(s) != "red" || s.Int("size", EvalContext{}, 0) != 1 {
		t.Fatal("initial load")
	}
	replaceFile(t, b, `{"flags": {"size": {"variants": {"s": 1, "l": 3}, "default": "l"}}}`)
	if e := next(t, ch, EventUpdated); e.Source != "ab" || len(e.Changed) != 1 || e.Changed[0] != "size" {
		t.Errorf("event %+v", e)
	}
	if s.Int("size", EvalContext{}, 0) != 3 || color(s) != "red" {
		t.Error("second file's change not applied, or first file lost")
	}
	// Defining a flag in both files is refused, naming both.
	replaceFile(t, a, flagFile("red")+"  size:\n    variants: {x: 1}\n    default: x\n")
	e := next(t, ch, EventRejected)
	if e.Err == nil || !strings.Contains(e.Err.Error(), "also defined in "+a) {
		t.Errorf("rejection %v", e.Err)
	}
}
