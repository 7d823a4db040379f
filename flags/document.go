package flags

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"sync"
)

// DefaultDocumentSourceName is the Store source name of a DocumentSource
// whose DocumentOptions.Name is empty.
const DefaultDocumentSourceName = "documents"

// DefaultDocumentName names a Document whose Name is empty: a YAML
// document.
const DefaultDocumentName = "document.yaml"

// Document is one whole flag configuration with its version, as a fleet
// keeps it in an engine (etcd, PostgreSQL) and a transport delivers it.
// The zero Document is invalid: it has no version.
type Document struct {
	// Version orders documents: a DocumentSource applies only a version
	// above the one in force. The engine assigns it (etcd's mod revision,
	// a PostgreSQL sequence), so it only grows. It must be above 0.
	Version uint64
	// Name identifies the document in errors, as a path does a file
	// ("fleet.yaml:14: flag ..."), and its extension picks the syntax as
	// for files: ".json" is JSON, anything else YAML. Empty means
	// DefaultDocumentName.
	Name string
	// Data is the configuration in the file schema (see the package
	// documentation), with an optional overrides section, at most
	// MaxFileSize bytes.
	Data []byte
}

// ValidateDocument checks a document's content exactly as every host will
// before applying it (syntax, shape, references, cycles, expressions,
// overrides of its own flags) and returns the error a bad file gets: a
// *LoadError naming the document, the flag or segment, the line and the
// field, wrapping ErrInvalid. It needs no Store, so a change can be
// refused before it is stored anywhere. A document is self-contained: its
// rules and prerequisites may refer only to its own segments and flags
// (hosts' files differ). What it cannot check is a host's other sources:
// a flag or segment a host also defines in a file makes that host refuse
// the document (and report it STALE), and an override of a flag the
// document does not define applies where that flag exists.
func ValidateDocument(name string, data []byte) error {
	_, err := parseDocument(name, data)
	return err
}

func parseDocument(name string, data []byte) (Config, error) {
	if name == "" {
		name = DefaultDocumentName
	}
	cfg, err := Parse(name, data)
	if err != nil {
		return Config{}, err
	}
	if _, err := compile([]layer{{name, cfg}}, nil); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// DocumentOptions configures a DocumentSource. The zero DocumentOptions
// uses DefaultDocumentSourceName and keeps no cache.
type DocumentOptions struct {
	// Name is the source name in the Store. Empty means
	// DefaultDocumentSourceName.
	Name string
	// CacheFile is where every applied document is written, atomically
	// (a temporary file of mode 0600 synced and renamed over it, then its
	// directory synced), and where
	// NewDocumentSource starts from, so that a host that starts while its
	// engine is unreachable serves the last version it applied. Empty
	// means no cache: such a host serves none of the document's flags
	// until its transport delivers one.
	CacheFile string
}

// DocumentSource feeds a Store with whole, versioned documents from any
// transport (an etcd watch, a PostgreSQL LISTEN, a poll): the transport
// calls Apply with each version it receives, and MarkStale when it loses
// its engine. A document is applied whole or refused whole: a bad one, or
// one a host's other sources conflict with, is reported like a bad file
// (log, metric, Options.OnReject, subscribers: the OpenFeature provider
// reports STALE) and the last good configuration stays in force. File
// sources and code keep working beside it.
//
// A DocumentSource is stale (Store.StaleSources, EventStale) from its
// start until its transport delivers a version, whether or not it started
// from its cache, and again after MarkStale; Apply of a newer version, or
// of the version in force (the transport confirming it), makes it fresh.
// It starts no goroutine. The zero DocumentSource is not usable; call
// NewDocumentSource.
type DocumentSource struct {
	store *Store
	name  string
	cache string

	mu     sync.Mutex // serialises Apply and guards cur and closed
	cur    Document   // the document in force; Version 0 for none
	closed bool
}

// NewDocumentSource returns a source for s that starts from
// opts.CacheFile when it holds a document, and reports itself stale
// either way until Apply. A cache that cannot be read or is invalid is
// reported like a bad file and left as it is (the next applied document
// replaces it); the source then starts with nothing. It fails only when s
// is closed.
func NewDocumentSource(s *Store, opts DocumentOptions) (*DocumentSource, error) {
	d := &DocumentSource{store: s, name: opts.Name, cache: opts.CacheFile}
	if d.name == "" {
		d.name = DefaultDocumentSourceName
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	var why error = errNoDocument // nil once a rejection has said why
	if d.cache != "" {
		doc, err := readCache(d.cache)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			s.reject(d.name, fmt.Errorf("flags: document cache not used: %w", err))
			why = nil
		default:
			cfg, err := parseDocument(doc.Name, doc.Data)
			if err != nil {
				s.reject(d.name, fmt.Errorf("flags: document cache %s not used: %w", d.cache, err))
				why = nil
				break
			}
			if err := s.Set(d.name, cfg); err != nil {
				if errors.Is(err, ErrClosed) {
					return nil, err
				}
				why = nil // refused, and reported, by Set
				break
			}
			d.cur = doc
			why = fmt.Errorf("serving version %d from the cache %s until the transport delivers", doc.Version, d.cache)
		}
	}
	if why != nil {
		s.markStale(d.name, why)
	}
	return d, nil
}

// errNoDocument is why a DocumentSource is stale before its transport has
// delivered anything.
var errNoDocument = errors.New("no document from the transport yet")

// Apply puts doc in force if it is newer than the document in force and
// valid. It returns a *LoadError (wrapping ErrInvalid) for a bad or
// conflicting document, reported as a rejection, and an error wrapping
// ErrOldVersion, reported nowhere else, for an older version or the
// version in force with other content. The version in force delivered
// again confirms it: the source is fresh and nothing else happens. Once
// applied, the document is written to the cache; an error doing so is
// returned (and logged) but the document stays in force.
func (d *DocumentSource) Apply(doc Document) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if doc.Name == "" {
		doc.Name = DefaultDocumentName
	}
	if doc.Version == 0 {
		err := &LoadError{File: doc.Name, Err: errors.New("a document needs a version above 0")}
		d.store.reject(d.name, err)
		return err
	}
	if cur := d.cur; cur.Version != 0 && doc.Version <= cur.Version {
		if doc.Version == cur.Version && doc.Name == cur.Name && bytes.Equal(doc.Data, cur.Data) {
			d.store.markFresh(d.name)
			return nil
		}
		err := fmt.Errorf("%w: %s version %d, %d in force", ErrOldVersion, doc.Name, doc.Version, cur.Version)
		d.store.log.Warn("flags: document refused", "source", d.name, "err", err)
		return err
	}
	cfg, err := parseDocument(doc.Name, doc.Data)
	if err != nil {
		d.store.reject(d.name, err)
		return err
	}
	if err := d.store.Set(d.name, cfg); err != nil {
		return err
	}
	d.cur = Document{Version: doc.Version, Name: doc.Name, Data: bytes.Clone(doc.Data)}
	if d.cache != "" {
		if err := writeCache(d.cache, d.cur); err != nil {
			err = fmt.Errorf("flags: document %s version %d is in force but not cached: %w", doc.Name, doc.Version, err)
			d.store.log.Error("flags: document cache not written", "source", d.name, "err", err)
			return err
		}
	}
	return nil
}

// MarkStale reports that the document in force may be out of date, for
// why (the transport lost its engine, say): the provider reports STALE
// until the next Apply. Nothing else changes. A nil why is reported as
// "marked stale by the transport".
func (d *DocumentSource) MarkStale(why error) {
	if why == nil {
		why = errors.New("marked stale by the transport")
	}
	d.store.markStale(d.name, why)
}

// Current returns the document in force (its Data must not be modified),
// or the zero Document when none is.
func (d *DocumentSource) Current() Document {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur
}

// Close makes Apply return ErrClosed; the Store keeps the configuration.
// Close is idempotent and never fails.
func (d *DocumentSource) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}
