//go:build unix

package adminnet_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/internal/adminnet"
	"github.com/batonhq/baton/internal/testchild"
)

func TestMain(m *testing.M) {
	testchild.Register(roleLinked, linkedMain)
	testchild.Main(m, func() int { goleak.VerifyTestMain(m); return 0 })
}

func TestListenUnixMode0600(t *testing.T) {
	// With an empty umask a plain bind would create the socket 0777; the
	// private directory and rename must still yield 0600.
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	sock := filepath.Join(dir, "a.sock")
	ln, err := adminnet.ListenUnix(sock)
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
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("private directory left behind: %v", entries)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	c.Close()

	ln.Close()
	ln.Close() // idempotent: must not remove anything else
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
}

// A second instance must not steal the admin socket of a live one.
func TestListenUnixRefusesLiveSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "a.sock")
	ln, err := adminnet.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln2, err := adminnet.ListenUnix(sock)
	if err == nil {
		ln2.Close()
		t.Fatal("a second listener took the live socket")
	}
	if !errors.Is(err, adminnet.ErrSocketInUse) || !strings.Contains(err.Error(), sock) {
		t.Fatalf("error %v: want ErrSocketInUse naming the path", err)
	}
	// The first one still serves at path.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("live socket gone after the refused attempt: %v", err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	c.Close()
}

// The socket of a dead process (nothing answers) is replaced.
func TestListenUnixReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "a.sock")
	dead, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	dead.SetUnlinkOnClose(false) // what a kill -9 leaves: the file, no listener
	dead.Close()
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("no stale socket to test with: %v", err)
	}
	ln, err := adminnet.ListenUnix(sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	c.Close()
}

// Close removes the path only while it is still this listener's socket:
// a successor that took the path over keeps its socket.
func TestListenUnixCloseKeepsSuccessorSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "a.sock")
	ln, err := adminnet.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	// The path is taken over (an operator removed the file, a successor
	// bound it) while ln still runs.
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	next, err := adminnet.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	ln.Close()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("closing the predecessor removed the successor's socket: %v", err)
	}
	s, err := next.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	c.Close()
	next.Close()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left after the successor's Close: %v", err)
	}
}

func TestListenUnixRefusesOtherFiles(t *testing.T) {
	plain := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(plain, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := adminnet.ListenUnix(plain); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
	if b, err := os.ReadFile(plain); err != nil || string(b) != "keep" {
		t.Fatalf("regular file changed: %q, %v", b, err)
	}
	if _, err := adminnet.ListenUnix(filepath.Join(t.TempDir(), "missing", "a.sock")); err == nil {
		t.Fatal("socket in a missing directory accepted")
	}
}

func TestListenLoopback(t *testing.T) {
	for _, bad := range []string{"0.0.0.0:0", "192.0.2.1:0", ":0", "example.com:80", "127.0.0.1"} {
		if l, err := adminnet.ListenLoopback(bad); err == nil {
			l.Close()
			t.Errorf("ListenLoopback(%q) accepted", bad)
		}
	}
	for _, good := range []string{"127.0.0.1:0", "localhost:0"} {
		l, err := adminnet.ListenLoopback(good)
		if err != nil {
			t.Fatalf("ListenLoopback(%q): %v", good, err)
		}
		if ip := l.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			t.Errorf("ListenLoopback(%q) bound %s", good, ip)
		}
		l.Close()
	}
}
