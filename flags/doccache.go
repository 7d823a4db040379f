package flags

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The cache file of a DocumentSource holds the last applied document: one
// header line, then the document's bytes as they came, so that an
// operator can read it:
//
//	baton-flags-document v1 version=42 size=1234 sha256=<hex> name="fleet.yaml"
//	flags:
//	  ...
//
// The size and digest catch a file cut short or edited by hand, which the
// atomic write never leaves but a full disk or an operator might; such a
// cache is refused rather than served in part.

const cacheMagic = "baton-flags-document v1"

// writeCache replaces path with doc atomically: a temporary file in the
// same directory, written, synced and renamed over path, then the
// directory synced, so that a crash leaves the old cache or the new one.
func writeCache(path string, doc Document) error {
	sum := sha256.Sum256(doc.Data)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s version=%d size=%d sha256=%s name=%s\n", cacheMagic, doc.Version, len(doc.Data), hex.EncodeToString(sum[:]), strconv.Quote(doc.Name))
	b.Write(doc.Data)
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readCache reads the document a cache file holds; an error wrapping
// fs.ErrNotExist when there is none.
func readCache(path string) (Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return Document{}, err
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(f, MaxFileSize+4096)); err != nil {
		return Document{}, err
	}
	data := b.Bytes()
	bad := func(format string, args ...any) (Document, error) {
		return Document{}, &LoadError{File: path, Line: 1, Err: fmt.Errorf("not a document cache: "+format, args...)}
	}
	header, body, ok := bytes.Cut(data, []byte{'\n'})
	if !ok {
		return bad("no header line")
	}
	rest, ok := strings.CutPrefix(string(header), cacheMagic+" ")
	if !ok {
		return bad("the header does not start with %q", cacheMagic)
	}
	var doc Document
	var size int
	var digest string
	for rest != "" {
		key, value, ok := strings.Cut(rest, "=")
		if !ok {
			return bad("header field %q has no value", rest)
		}
		if key == "name" {
			q, err := strconv.QuotedPrefix(value)
			if err != nil {
				return bad("name: %v", err)
			}
			doc.Name, _ = strconv.Unquote(q)
			rest = strings.TrimPrefix(value[len(q):], " ")
			continue
		}
		value, rest, _ = strings.Cut(value, " ")
		switch key {
		case "version":
			doc.Version, err = strconv.ParseUint(value, 10, 64)
		case "size":
			size, err = strconv.Atoi(value)
		case "sha256":
			digest = value
		default:
			err = fmt.Errorf("unknown field")
		}
		if err != nil {
			return bad("%s=%s: %v", key, value, err)
		}
	}
	if size != len(body) {
		return bad("it holds %d bytes of document, its header says %d (cut short?)", len(body), size)
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != digest {
		return bad("the document's SHA-256 differs from the header's (edited or damaged)")
	}
	if doc.Version == 0 {
		return bad("no version")
	}
	doc.Data = body
	return doc, nil
}
