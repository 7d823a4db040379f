package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemo runs the scripted demo against the shipped flags file: a real
// server, real file edits, and the OpenFeature events they cause.
func TestDemo(t *testing.T) {
	if err := runDemo(slog.New(slog.NewTextHandler(io.Discard, nil)), "flags.yaml"); err != nil {
		t.Fatal(err)
	}
}

// TestListenAdmin checks that the admin API is reachable only locally: a Unix
// socket with mode 0600, which never deletes a file that is not a socket, or a
// loopback address.
func TestListenAdmin(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	ln, err := listenAdmin(sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket mode %v", fi.Mode())
	}
	ln.Close()
	plain := filepath.Join(dir, "notes.sock")
	if err := os.WriteFile(plain, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenAdmin(plain); err == nil {
		t.Fatal("a regular file at the socket path was replaced")
	}
	if b, err := os.ReadFile(plain); err != nil || string(b) != "keep" {
		t.Fatalf("regular file changed: %q, %v", b, err)
	}
	if ln, err := listenAdmin("0.0.0.0:0"); err == nil {
		ln.Close()
		t.Fatal("a public address was accepted")
	}
	ln, err = listenAdmin("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}
