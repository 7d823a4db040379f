//go:build linux

package graceful_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testchild"
)

// On a first start, a socket passed by systemd (LISTEN_FDS) is used.
func TestSocketActivation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	dir := t.TempDir()
	errf, _ := os.Create(filepath.Join(dir, "stderr"))
	defer errf.Close()
	t.Cleanup(func() { checkNoRace(t, filepath.Join(dir, "stderr")) })
	// LISTEN_PID must name the process itself, known only after fork: the
	// shell sets it before exec.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -addr "$1" -addrfile "$2"`,
		goodBin, addr, filepath.Join(dir, "addr"))
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout, cmd.Stderr = errf, errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = testchild.Wait(t, "the socket-activated server, drained by SIGTERM", cmd, testWait)
	}()
	waitFile(t, filepath.Join(dir, "addr"))
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: testWait}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("activated socket not served: %v", err)
	}
	resp.Body.Close()
	// The inherited socket was used, not a new one: the address was
	// bound only by the socket we passed (no SO_REUSEPORT), so a second
	// bind must fail while it is open.
	if l2, err := net.Listen("tcp", addr); err == nil {
		l2.Close()
		t.Error("address free again: the activated socket was not used")
	}
}

// Unix stream and UDP sockets are inherited too; the Unix socket's path
// outlives the old process.
func TestUnixAndUDPInherited(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpAddr := pc.LocalAddr().String()
	pc.Close()
	s := startServer(t, nil, "-unix", sock, "-udp", udpAddr)
	unixClient := &http.Client{Timeout: testWait, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	askUnix := func() string {
		resp, err := unixClient.Get("http://unix/")
		if err != nil {
			t.Fatalf("unix: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	askUDP := func() string {
		c, err := net.Dial("udp", udpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 64)
		for range 100 {
			c.Write([]byte("?"))
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, err := c.Read(buf); err == nil {
				return string(buf[:n])
			}
		}
		t.Fatal("udp: no answer")
		return ""
	}
	want := fmt.Sprintf("pid=%d", s.first)
	if got := askUnix(); got != want {
		t.Fatalf("unix before: %q", got)
	}
	if got := askUDP(); got != want {
		t.Fatalf("udp before: %q", got)
	}
	if ok, msg := s.upgrade(); !ok {
		t.Fatal(msg)
	}
	waitGone(t, s.first)
	want = fmt.Sprintf("pid=%d", s.pidFile())
	if got := askUnix(); got != want {
		t.Errorf("unix after: %q, want %q", got, want)
	}
	if got := askUDP(); got != want {
		t.Errorf("udp after: %q, want %q", got, want)
	}
}
