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

// TestListenAdmin checks that the admin API is reachable only locally: a
// path ending in .sock gets a Unix socket with mode 0600 (internal/adminnet's
// tests cover the rest), anything else must be a loopback address.
func TestListenAdmin(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := listenAdmin(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket: %v, %v", fi, err)
	}
	if ln, err := listenAdmin("0.0.0.0:0"); err == nil {
		ln.Close()
		t.Fatal("a public address was accepted")
	}
	tcp, err := listenAdmin("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp.Close()
}
