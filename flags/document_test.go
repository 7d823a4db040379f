package flags

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const fleetDoc = `# the fleet's flags
segments:
  staff: {keys: [alice]}
flags:
  checkout:
    variants: {on: true, off: false}
    default: off
    rules:
      - if: {segment: staff}
        serve: on
  color:
    variants: {red: "#f00", blue: "#00f"}
    default: red
`

func doc(version uint64, data string) Document {
	return Document{Version: version, Name: "fleet.yaml", Data: []byte(data)}
}

// TestValidateDocumentLikeAFile: a document gets the errors a file with the
// same bytes gets, line and field included, with no Store; a document must
// be self-contained.
func TestValidateDocumentLikeAFile(t *testing.T) {
	if err := ValidateDocument("fleet.yaml", []byte(fleetDoc)); err != nil {
		t.Fatalf("a good document: %v", err)
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown variant":  strings.Replace(fleetDoc, "serve: on", "serve: maybe", 1),
		"bad regexp":       fleetDoc + "  ua:\n    variants: {on: true}\n    default: on\n    rules:\n      - if: {attr: ua, op: matches, value: \"(\"}\n        serve: on\n",
		"syntax":           fleetDoc + "  broken: {variants: [\n",
		"cycle":            fleetDoc + "  a:\n    variants: {on: true}\n    default: on\n    prerequisites: [{flag: a, variants: [on]}]\n",
		"override variant": fleetDoc + "overrides:\n  color: {percent: {variant: green, percent: 10}}\n",
		"override field":   fleetDoc + "overrides:\n  color: {percent: {variant: blue, percent: 110}}\n",
	} {
		path := filepath.Join(dir, "fleet.yaml")
		writeFile(t, path, body)
		cfg, fileErr := LoadFiles(path)
		if fileErr == nil {
			s, _ := newStore(t, Config{})
			fileErr = s.Set("files", cfg)
		}
		docErr := ValidateDocument(path, []byte(body))
		var le *LoadError
		if !errors.As(docErr, &le) || !errors.Is(docErr, ErrInvalid) || le.Line == 0 {
			t.Errorf("%s: ValidateDocument = %v, want a *LoadError with a line", name, docErr)
			continue
		}
		if fileErr == nil || docErr.Error() != fileErr.Error() {
			t.Errorf("%s: document error\n  %v\nfile error\n  %v", name, docErr, fileErr)
		}
	}
	// Self-contained: a segment only a host's file defines is unknown.
	err := ValidateDocument("fleet.yaml", []byte("flags:\n  f:\n    variants: {on: true}\n    default: on\n    rules: [{if: {segment: beta}, serve: on}]\n"))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `unknown segment "beta"`) {
		t.Errorf("a reference outside the document: %v", err)
	}
	// An override of a flag the document does not define is the hosts' business.
	if err := ValidateDocument("fleet.yaml", []byte(fleetDoc+"overrides:\n  from-a-file: {disabled: true}\n")); err != nil {
		t.Errorf("an override of another source's flag: %v", err)
	}
}

// TestDocumentVersions: newer versions apply, older ones and other content
// under the version in force are refused without a rejection, the version
// in force again confirms it, a bad one is refused like a bad file with
// the last good configuration kept.
func TestDocumentVersions(t *testing.T) {
	var mu sync.Mutex
	var rejected []error
	s, err := New(Options{OnReject: func(err error) { mu.Lock(); rejected = append(rejected, err); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch := events(t, s)
	d, err := NewDocumentSource(s, DocumentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if e := next(t, ch, EventStale); e.Source != DefaultDocumentSourceName || !errors.Is(e.Err, errNoDocument) {
		t.Errorf("a new source is stale with no document: %+v", e)
	}
	color := func() string { return s.String("color", EvalContext{}, "") }
	if err := d.Apply(doc(5, fleetDoc)); err != nil {
		t.Fatal(err)
	}
	next(t, ch, EventUpdated)
	if color() != "#f00" || len(s.StaleSources()) != 0 {
		t.Fatalf("version 5 not in force (%q) or still stale (%v)", color(), s.StaleSources())
	}
	blue := strings.Replace(fleetDoc, "default: red", "default: blue", 1)
	if err := d.Apply(doc(9, blue)); err != nil || color() != "#00f" {
		t.Fatalf("version 9: %v, %q", err, color())
	}
	for _, old := range []Document{doc(8, fleetDoc), doc(9, fleetDoc)} {
		if err := d.Apply(old); !errors.Is(err, ErrOldVersion) {
			t.Errorf("version %d over 9: %v, want ErrOldVersion", old.Version, err)
		}
	}
	if err := d.Apply(doc(0, fleetDoc)); !errors.Is(err, ErrInvalid) {
		t.Errorf("version 0: %v", err)
	}
	bad := strings.Replace(blue, "default: blue", "default: green", 1)
	err = d.Apply(doc(10, bad))
	var le *LoadError
	if !errors.As(err, &le) || le.File != "fleet.yaml" || le.Flag != "color" || le.Line != 11 || le.Field != "default" {
		t.Errorf("bad version 10: %v, want fleet.yaml:11 color default", err)
	}
	if color() != "#00f" || d.Current().Version != 9 {
		t.Errorf("the last good version is not in force: %q, version %d", color(), d.Current().Version)
	}
	if _, stale := s.StaleSources()[DefaultDocumentSourceName]; !stale {
		t.Error("a refused document does not make the source stale")
	}
	mu.Lock()
	if len(rejected) != 2 { // version 0 and version 10
		t.Errorf("%d rejections reported, want 2: %v", len(rejected), rejected)
	}
	mu.Unlock()
	if err := d.Apply(doc(11, fleetDoc)); err != nil || color() != "#f00" || len(s.StaleSources()) != 0 {
		t.Errorf("version 11 after a bad one: %v, %q, stale %v", err, color(), s.StaleSources())
	}
	d.MarkStale(errors.New("engine unreachable"))
	if e := next(t, ch, EventStale); !strings.Contains(e.Err.Error(), "engine unreachable") {
		t.Errorf("MarkStale: %+v", e)
	}
	v := s.Version()
	if err := d.Apply(doc(11, fleetDoc)); err != nil {
		t.Fatal(err)
	}
	if e := next(t, ch, EventFresh); e.Version != v || s.Version() != v || len(s.StaleSources()) != 0 {
		t.Errorf("the version in force confirmed: %+v, store version %d (was %d)", e, s.Version(), v)
	}
	d.Close()
	if err := d.Apply(doc(12, fleetDoc)); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close: %v", err)
	}
}

// TestDocumentCache: every applied version is written atomically to the
// cache; a host that starts with nothing from its transport serves the
// cache and is stale until the transport delivers; a damaged cache is
// refused whole, reported, and left for the next version to replace.
func TestDocumentCache(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "flags.cache")
	s1, _ := newStore(t, Config{})
	d1, err := NewDocumentSource(s1, DocumentOptions{CacheFile: cache})
	if err != nil {
		t.Fatal(err)
	}
	if err := d1.Apply(doc(7, fleetDoc)); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the cache directory holds %v, want the cache alone (no temporary file left)", entries)
	}
	data, err := os.ReadFile(cache)
	if err != nil || !bytes.HasPrefix(data, []byte("baton-flags-document v1 version=7 ")) || !bytes.HasSuffix(data, []byte(fleetDoc)) {
		t.Fatalf("cache file: %v\n%s", err, data)
	}

	// A restart while the engine is down: the cache serves, stale.
	s2, _ := newStore(t, Config{})
	d2, err := NewDocumentSource(s2, DocumentOptions{CacheFile: cache})
	if err != nil {
		t.Fatal(err)
	}
	if !s2.Bool("checkout", EvalContext{TargetingKey: "alice"}, false) || d2.Current().Version != 7 {
		t.Fatalf("the cached version 7 is not served (version %d)", d2.Current().Version)
	}
	why := s2.StaleSources()[DefaultDocumentSourceName]
	if why == nil || !strings.Contains(why.Error(), "serving version 7 from the cache") {
		t.Errorf("stale sources %v, want the document source serving its cache", s2.StaleSources())
	}
	if err := d2.Apply(doc(8, strings.Replace(fleetDoc, "keys: [alice]", "keys: [bob]", 1))); err != nil {
		t.Fatal(err)
	}
	if s2.Bool("checkout", EvalContext{TargetingKey: "alice"}, false) || len(s2.StaleSources()) != 0 {
		t.Error("version 8 did not replace the cached version, or the source is still stale")
	}
	if data, _ := os.ReadFile(cache); !bytes.HasPrefix(data, []byte("baton-flags-document v1 version=8 ")) {
		t.Errorf("the cache was not rewritten with version 8:\n%s", data)
	}

	// Damaged caches are refused whole and reported, never served in part.
	good, _ := os.ReadFile(cache)
	for name, damaged := range map[string][]byte{
		"cut short":   good[:len(good)-40],
		"edited":      bytes.Replace(good, []byte("bob"), []byte("eve"), 1),
		"not a cache": []byte(fleetDoc),
		"empty":       {},
	} {
		writeFile(t, cache, string(damaged))
		var rejected error
		s3, err := New(Options{OnReject: func(err error) { rejected = err }})
		if err != nil {
			t.Fatal(err)
		}
		d3, err := NewDocumentSource(s3, DocumentOptions{CacheFile: cache})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var le *LoadError
		if !errors.As(rejected, &le) || le.File != cache || !strings.Contains(rejected.Error(), "not a document cache") {
			t.Errorf("%s: rejection %v, want one naming the cache", name, rejected)
		}
		if s3.Status("checkout").Key != "" || d3.Current().Version != 0 || s3.StaleSources()[DefaultDocumentSourceName] == nil {
			t.Errorf("%s: a damaged cache was served, or the source is not stale", name)
		}
		if data, _ := os.ReadFile(cache); !bytes.Equal(data, damaged) {
			t.Errorf("%s: the damaged cache was changed before a new version", name)
		}
		s3.Close()
	}

	// A cache that cannot be written: the document is in force anyway.
	d4, err := NewDocumentSource(s1, DocumentOptions{Name: "other", CacheFile: filepath.Join(dir, "missing", "flags.cache")})
	if err != nil {
		t.Fatal(err)
	}
	err = d4.Apply(Document{Version: 1, Name: "other.yaml", Data: []byte("flags:\n  x: {variants: {on: true}, default: on}\n")})
	if err == nil || !strings.Contains(err.Error(), "in force but not cached") || !s1.Bool("x", EvalContext{}, false) {
		t.Errorf("unwritable cache: %v, x served %v", err, s1.Bool("x", EvalContext{}, false))
	}
}

// TestDocumentBesideFiles: a file source and a document source serve side
// by side; the document's override applies to a file's flag; a document
// that defines a file's flag is refused by that host, which keeps the last
// good configuration and reports the source stale.
func TestDocumentBesideFiles(t *testing.T) {
	s, _, path := watched(t, Options{}, flagFile("red"))
	d, err := NewDocumentSource(s, DocumentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	withOverride := fleetDoc[:strings.Index(fleetDoc, "  color:")] + "overrides:\n  color: {disabled: true}\n"
	if err := d.Apply(doc(1, withOverride)); err != nil {
		t.Fatal(err)
	}
	if c := s.StringDetail("color", EvalContext{}, ""); c.Reason != ReasonDisabled || !s.Bool("checkout", EvalContext{TargetingKey: "alice"}, false) {
		t.Errorf("file flag %+v (want disabled by the document), document flag not served", c)
	}
	conflict := "flags:\n  color: {variants: {x: \"x\"}, default: x}\n"
	err = d.Apply(doc(2, conflict))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "also defined in") {
		t.Errorf("a document redefining a file's flag: %v", err)
	}
	if d.Current().Version != 1 || s.StaleSources()[DefaultDocumentSourceName] == nil || !s.Bool("checkout", EvalContext{TargetingKey: "alice"}, false) {
		t.Error("the conflicting document changed what is served, or the source is not stale")
	}
	// A file edit on its own flag keeps the document's override.
	ch := events(t, s)
	replaceFile(t, path, flagFile("green"))
	next(t, ch, EventUpdated)
	if c := s.StringDetail("color", EvalContext{}, ""); c.Reason != ReasonDisabled {
		t.Errorf("after the file changed: %+v, want still disabled by the document", c)
	}
}

// TestOverridePrecedence: the Store's own changes win over a source's,
// field by field; clearing them leaves the source's; one flag may be
// overridden by one source only.
func TestOverridePrecedence(t *testing.T) {
	on := true
	s, _ := newStore(t, Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off", Serve: Serve{Variant: "on"}}}})
	if err := s.Set("fleet", Config{Overrides: map[string]Override{"f": {Disabled: &on}}}); err != nil {
		t.Fatal(err)
	}
	ec := EvalContext{TargetingKey: "u"}
	if d := s.BoolDetail("f", ec, true); d.Reason != ReasonDisabled {
		t.Fatalf("source override: %+v", d)
	}
	if err := s.SetPercent("f", "on", 100); err != nil {
		t.Fatal(err)
	}
	if d := s.BoolDetail("f", ec, true); d.Reason != ReasonDisabled {
		t.Errorf("a local percentage lifted the source's kill switch: %+v", d)
	}
	if err := s.SetDisabled("f", false); err != nil {
		t.Fatal(err)
	}
	if d := s.BoolDetail("f", ec, false); !d.Value || d.Reason != ReasonSplit {
		t.Errorf("local enable and 100%%: %+v", d)
	}
	if err := s.ClearOverride("f"); err != nil {
		t.Fatal(err)
	}
	if d := s.BoolDetail("f", ec, true); d.Reason != ReasonDisabled {
		t.Errorf("after ClearOverride the source's override is gone: %+v", d)
	}
	err := s.Set("other", Config{Overrides: map[string]Override{"f": {Percent: &Percent{"on", 5}}}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "override also given by fleet") {
		t.Errorf("a second source overriding f: %v", err)
	}
	// A source's override that no longer applies to another source's flag
	// is skipped, never blocking either source.
	if err := s.Set("fleet", Config{Overrides: map[string]Override{"f": {Percent: &Percent{"gone", 5}}}}); err != nil {
		t.Fatalf("an override of another source's flag blocked its own source: %v", err)
	}
	if d := s.BoolDetail("f", ec, false); !d.Value || d.Reason != ReasonStatic {
		t.Errorf("a skipped override changed the flag: %+v", d)
	}
}

// to is an edit that replaces an override with o.
func to(o Override) func(*Override) error {
	return func(cur *Override) error { *cur = o; return nil }
}

// TestEditOverride: a run-time change rewrites only the overrides section
// of a document; YAML keeps its comments; the result validates; a change
// that does not apply to the document's own flag is refused.
func TestEditOverride(t *testing.T) {
	off := true
	out, err := EditOverride("fleet.yaml", []byte(fleetDoc), "checkout", to(Override{Percent: &Percent{"on", 25}}))
	if err != nil {
		t.Fatal(err)
	}
	out, err = EditOverride("fleet.yaml", out, "from-a-file", to(Override{Disabled: &off}))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("fleet.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.Overrides["checkout"]; o.Percent == nil || *o.Percent != (Percent{"on", 25}) || o.Disabled != nil {
		t.Errorf("checkout's override %+v", o)
	}
	if o := cfg.Overrides["from-a-file"]; o.Disabled == nil || !*o.Disabled {
		t.Errorf("from-a-file's override %+v", o)
	}
	// edit sees the current override: a kill switch keeps the percentage.
	out, err = EditOverride("fleet.yaml", out, "checkout", func(o *Override) error {
		if o.Percent == nil || o.Percent.Percent != 25 {
			t.Errorf("edit got %+v, want the 25%% in the document", o)
		}
		o.Disabled = &off
		return nil
	})
	if cfg, _ = Parse("fleet.yaml", out); err != nil || cfg.Overrides["checkout"].Percent == nil || cfg.Overrides["checkout"].Disabled == nil {
		t.Errorf("after a read-modify-write: %+v, %v", cfg.Overrides["checkout"], err)
	}
	if !bytes.Contains(out, []byte("# the fleet's flags")) || len(cfg.Flags) != 2 || len(cfg.Segments) != 1 {
		t.Errorf("the rest of the document changed:\n%s", out)
	}
	for _, key := range []string{"checkout", "from-a-file"} {
		if out, err = EditOverride("fleet.yaml", out, key, to(Override{})); err != nil {
			t.Fatal(err)
		}
	}
	if bytes.Contains(out, []byte("overrides")) {
		t.Errorf("clearing every override left the section:\n%s", out)
	}

	js := []byte(`{"flags": {"checkout": {"variants": {"on": true, "off": false}, "default": "off"}}}`)
	jout, err := EditOverride("fleet.json", js, "checkout", to(Override{Disabled: &off, Percent: &Percent{"on", 50}}))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(jout, &top); err != nil || top["overrides"] == nil {
		t.Fatalf("JSON result %s: %v", jout, err)
	}
	if cfg, err := Parse("fleet.json", jout); err != nil || cfg.Overrides["checkout"].Percent.Percent != 50 {
		t.Errorf("JSON result does not parse back: %v", err)
	}

	_, err = EditOverride("fleet.yaml", []byte(fleetDoc), "checkout", to(Override{Percent: &Percent{"off", 10}}))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "is the default") {
		t.Errorf("a percentage on the default variant: %v", err)
	}
	if _, err := EditOverride("fleet.yaml", []byte("flags: ["), "x", to(Override{Disabled: &off})); !errors.Is(err, ErrInvalid) {
		t.Errorf("a bad document: %v", err)
	}
}

// docWriter is what a fleet does with admin changes: it edits the
// document, and the transport applies the new version on every host (here
// one, synchronously).
type docWriter struct {
	t   *testing.T
	src *DocumentSource
}

func (w docWriter) UpdateOverride(_ context.Context, key string, edit func(*Override) error) error {
	cur := w.src.Current()
	data, err := EditOverride(cur.Name, cur.Data, key, edit)
	if err != nil {
		return err
	}
	return w.src.Apply(Document{Version: cur.Version + 1, Name: cur.Name, Data: data})
}

// TestAdminWritesToTheDocument: with AdminOptions.Overrides the admin
// handler's changes go to the writer (a fleet's document), checked first
// against the host's flag; the Store's own overrides stay untouched.
func TestAdminWritesToTheDocument(t *testing.T) {
	s, _ := newStore(t, Config{})
	src, err := NewDocumentSource(s, DocumentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Apply(doc(1, fleetDoc)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewAdminHandler(s, AdminOptions{Overrides: docWriter{t, src}}))
	defer srv.Close()
	req := func(method, path, body string) int {
		r, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		resp, err := srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := req("PUT", "/flags/checkout/percent", `{"variant": "on", "percent": 100}`); code != 200 {
		t.Fatalf("percent: %d", code)
	}
	if d := s.BoolDetail("checkout", EvalContext{TargetingKey: "bob"}, false); !d.Value || d.Reason != ReasonSplit || src.Current().Version != 2 {
		t.Errorf("after the admin change: %+v at document version %d", d, src.Current().Version)
	}
	if !bytes.Contains(src.Current().Data, []byte("overrides:")) {
		t.Errorf("the change is not in the document:\n%s", src.Current().Data)
	}
	if code := req("PUT", "/flags/checkout/percent", `{"variant": "nope", "percent": 5}`); code != 400 || src.Current().Version != 2 {
		t.Errorf("a bad variant: %d, document version %d (want 400, 2)", code, src.Current().Version)
	}
	if code := req("DELETE", "/flags/checkout/override", `{}`); code != 200 {
		t.Fatalf("clear: %d", code)
	}
	if d := s.BoolDetail("checkout", EvalContext{TargetingKey: "bob"}, true); d.Value || src.Current().Version != 3 {
		t.Errorf("after clearing: %+v at version %d", d, src.Current().Version)
	}
	if code := req("POST", "/flags/missing/disable", `{}`); code != 404 {
		t.Errorf("an unknown flag: %d", code)
	}
}

// TestDocumentApplyConcurrent: two transports racing (a watch and a
// resync, say) and readers evaluating: versions never go backwards, each
// Apply either applies or is refused as old, and the newest one wins.
func TestDocumentApplyConcurrent(t *testing.T) {
	s, _ := newStore(t, Config{})
	src, err := NewDocumentSource(s, DocumentOptions{CacheFile: filepath.Join(t.TempDir(), "flags.cache")})
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	var reader, appliers sync.WaitGroup
	stop := make(chan struct{})
	reader.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				s.String("color", EvalContext{}, "")
				_ = src.Current()
			}
		}
	})
	for g := range 2 {
		appliers.Go(func() {
			for v := uint64(1 + g); v <= n; v += 2 {
				body := strings.Replace(fleetDoc, "default: red", "default: blue", int(v%2))
				if err := src.Apply(doc(v, body)); err != nil && !errors.Is(err, ErrOldVersion) {
					t.Errorf("version %d: %v", v, err)
				}
			}
		})
	}
	within(t, 30*time.Second, "two transports applying 60 versions", appliers.Wait)
	close(stop)
	within(t, 10*time.Second, "the reader to stop", reader.Wait)
	if v := src.Current().Version; v != n {
		t.Errorf("version %d in force, want %d", v, n)
	}
	if data, err := os.ReadFile(src.cache); err != nil || !bytes.HasPrefix(data, []byte("baton-flags-document v1 version=60 ")) {
		t.Errorf("the cache does not hold version 60: %v", err)
	}
}
