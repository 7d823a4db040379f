//go:build linux

package graceful_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Requests in flight across an upgrade (2 s each, known to be inside the
// old process's handler before the trigger) complete on the old process; a
// hijacked connection is told to finish and closed at the drain deadline.
func TestInFlightAndHijackedAcrossUpgrade(t *testing.T) {
	s := startServer(t, nil, "-drain-timeout", "4s")
	hj, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Close()
	r := bufio.NewReader(hj)
	fmt.Fprintf(hj, "GET /hijack HTTP/1.1\r\nHost: test\r\n\r\n")
	if line, err := readLine(t, hj, r); err != nil || !strings.HasPrefix(line, "hello") {
		t.Fatalf("hijack: %q %v", line, err)
	}
	type result struct {
		body string
		err  error
	}
	results := make(chan result, 4)
	for range 4 {
		go func() {
			resp, err := s.client.Get(s.url("/?delay=2s"))
			if err != nil {
				results <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{string(b), err}
		}()
	}
	// Only the first process exists yet, so it answers /inflight; the
	// long requests are inside its handler before the upgrade starts.
	s.waitInFlight(4, s.first)
	if ok, msg := s.upgrade(); !ok {
		t.Fatal(msg)
	}
	if line, err := readLine(t, hj, r); err != nil || !strings.HasPrefix(line, fmt.Sprintf("bye pid=%d", s.first)) {
		t.Fatalf("hijacked connection was not told to finish: %q %v", line, err)
	}
	// The old process still drains (the hijacked connection holds it
	// until the deadline); the new one may upgrade meanwhile (tableflip
	// issue 52).
	if ok, msg := s.upgrade(); !ok {
		t.Fatalf("upgrade while the old process drains: %s", msg)
	}
	if !processAlive(s.first) {
		t.Error("the old process was gone before its drain deadline; the check above proved nothing")
	}
	for range 4 {
		res := recv(t, "a long request to be answered", results)
		if want := fmt.Sprintf("pid=%d", s.first); res.err != nil || strings.TrimSpace(res.body) != want {
			t.Errorf("long request: %q %v, want %s (the old process, where it was in flight)", res.body, res.err, want)
		}
	}
	// We never hang up; the old process's drain deadline closes it.
	if line, err := readLine(t, hj, r); !errors.Is(err, io.EOF) {
		t.Errorf("hijacked connection after the deadline: %q %v, want EOF", line, err)
	}
	waitGone(t, s.first)
}

// SIGTERM: readiness turns not-ready while requests are still answered
// (the drain delay), the hijacked connection is told to finish; a second
// SIGTERM closes at once instead of waiting for the drain deadline; the
// Unix socket's path is removed as nobody serves it any more.
func TestStopSignals(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	s := startServer(t, nil, "-drain-delay", "60s", "-drain-timeout", "60s", "-unix", sock)
	hj, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Close()
	r := bufio.NewReader(hj)
	fmt.Fprintf(hj, "GET /hijack HTTP/1.1\r\nHost: test\r\n\r\n")
	if line, err := readLine(t, hj, r); err != nil || !strings.HasPrefix(line, "hello") {
		t.Fatalf("hijack: %q %v", line, err)
	}
	if err := syscall.Kill(s.first, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Inside the delay: not ready, but still serving.
	s.waitState("draining")
	if got := s.pid(); got != s.first {
		t.Fatalf("answered by %d", got)
	}
	if err := syscall.Kill(s.first, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Closed at once: well before the 60 s delay and deadline (it may
	// still have been told to finish on the way).
	line, err := readLine(t, hj, r)
	if err == nil && strings.HasPrefix(line, "bye") {
		line, err = readLine(t, hj, r)
	}
	if !errors.Is(err, io.EOF) {
		t.Errorf("hijacked connection after the second SIGTERM: %q %v, want EOF", line, err)
	}
	waitGone(t, s.first)
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unix socket path after the last process stopped: %v", err)
	}
}

// systemd sees READY=1, RELOADING=1, MAINPID= of the new process with
// READY=1, and STOPPING=1.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	pc, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	msgs := make(chan string, 32)
	go func() {
		defer close(msgs)
		buf := make([]byte, 4096)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func() string {
		select {
		case m := <-msgs:
			return m
		case <-time.After(20 * time.Second):
			t.Fatal("no notification")
		}
		return ""
	}
	s := startServer(t, []string{"NOTIFY_SOCKET=" + sock})
	if m := next(); m != "READY=1" {
		t.Fatalf("first notification %q", m)
	}
	if ok, msg := s.upgrade(); !ok {
		t.Fatal(msg)
	}
	if m := next(); !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("on upgrade: %q", m)
	}
	child := s.pidFile()
	if m := next(); m != fmt.Sprintf("MAINPID=%d\nREADY=1", child) {
		t.Errorf("after handoff: %q, want MAINPID of %d", m, child)
	}
	if err := syscall.Kill(child, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if m := next(); m != "STOPPING=1" {
		t.Errorf("on stop: %q", m)
	}
	waitGone(t, child)
	pc.Close()
	for range msgs {
	}
}
