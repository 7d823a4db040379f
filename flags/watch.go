package flags

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a FileSource waits after the last change in
// a watched directory before reloading: long enough to see an editor's
// write-then-rename as one change, short enough that a change is visible
// well within 100 ms.
const DefaultDebounce = 20 * time.Millisecond

// DefaultFileSourceName is the Store source name of a FileSource whose
// Options.Name is empty.
const DefaultFileSourceName = "files"

// FileOptions configures a FileSource. Paths is required; the other zero
// fields mean the documented defaults.
type FileOptions struct {
	// Paths are the flag files (".json" is JSON, anything else YAML). Their
	// flags are merged; defining a flag in two files is an error.
	Paths []string
	// Name is the source name in the Store. Empty means
	// DefaultFileSourceName.
	Name string
	// Debounce is the quiet time before a reload. Zero means
	// DefaultDebounce.
	Debounce time.Duration
}

// FileSource keeps a Store's definitions in step with files. It watches the
// files' directories (not the files), so it follows editors that write a
// new file and rename it over the old one, files deleted and created again,
// and Kubernetes ConfigMap symlink swaps. Every change in a watched
// directory schedules a reload; a reload whose bytes equal the last one's
// does nothing. A file that is missing or invalid is reported (log, metric,
// Options.OnReject, subscribers) and the last good configuration stays.
//
// The zero FileSource is not usable; call NewFileSource.
type FileSource struct {
	store    *Store
	paths    []string
	name     string
	debounce time.Duration
	watcher  *fsnotify.Watcher

	mu   sync.Mutex // serialises reloads and guards last
	last []byte     // fingerprint of the last reload attempt

	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// NewFileSource loads the files into s and starts watching them. If the
// first load fails, nothing is started and the error (a *LoadError)
// names the file, flag and line.
func NewFileSource(s *Store, opts FileOptions) (*FileSource, error) {
	if len(opts.Paths) == 0 {
		return nil, errors.New("flags: FileOptions.Paths is empty")
	}
	fs := &FileSource{
		store:    s,
		name:     opts.Name,
		debounce: opts.Debounce,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if fs.name == "" {
		fs.name = DefaultFileSourceName
	}
	if fs.debounce <= 0 {
		fs.debounce = DefaultDebounce
	}
	dirs := map[string]bool{}
	for _, p := range opts.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("flags: %s: %w", p, err)
		}
		fs.paths = append(fs.paths, abs)
		dirs[filepath.Dir(abs)] = true
	}
	if err := fs.Reload(); err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("flags: watching files: %w", err)
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			w.Close()
			return nil, fmt.Errorf("flags: watching %s: %w", d, err)
		}
	}
	fs.watcher = w
	// A change between the first load and Add would be missed: reload
	// once more now that the watch is in place (a no-op if nothing moved).
	fs.reloadQuiet()
	go fs.run()
	return fs, nil
}

func (fs *FileSource) run() {
	defer close(fs.done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-fs.stop:
			t.Stop()
			return
		case _, ok := <-fs.watcher.Events:
			if !ok {
				return
			}
			t.Reset(fs.debounce)
		case err, ok := <-fs.watcher.Errors:
			if !ok {
				return
			}
			// An overflowed event queue may have hidden a change.
			fs.store.log.Warn("flags: file watch error; reloading", "source", fs.name, "err", err)
			t.Reset(fs.debounce)
		case <-t.C:
			fs.reloadQuiet()
		}
	}
}

func (fs *FileSource) reloadQuiet() { _ = fs.reload(false) }

// Reload reads the files now and applies them, even if unchanged. It
// returns what was wrong when the files are rejected.
func (fs *FileSource) Reload() error { return fs.reload(true) }

func (fs *FileSource) reload(force bool) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var fp bytes.Buffer
	datas := make([][]byte, len(fs.paths))
	errs := make([]error, len(fs.paths))
	for i, p := range fs.paths {
		datas[i], errs[i] = readFile(p)
		fmt.Fprintf(&fp, "%s\x00%d\x00%v\x00", p, len(datas[i]), errs[i])
		fp.Write(datas[i])
	}
	if !force && bytes.Equal(fp.Bytes(), fs.last) {
		return nil
	}
	fs.last = fp.Bytes()
	var cfg Config
	for i, p := range fs.paths {
		if err := errs[i]; err != nil {
			fs.store.reject(fs.name, err)
			return err
		}
		c, err := Parse(p, datas[i])
		if err == nil {
			err = merge(&cfg, c, p)
		}
		if err != nil {
			fs.store.reject(fs.name, err)
			return err
		}
	}
	return fs.store.Set(fs.name, cfg)
}

// Close stops watching; the Store keeps the last configuration. Close is
// idempotent and returns when the watch goroutine has exited.
func (fs *FileSource) Close() error {
	var err error
	fs.closeOnce.Do(func() {
		close(fs.stop)
		<-fs.done
		err = fs.watcher.Close()
	})
	return err
}
