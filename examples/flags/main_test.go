package main

import (
	"io"
	"log/slog"
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

// TestListenAdmin checks that the admin API is reachable only locally:
// loopback addresses are accepted, anything else is refused.
func TestListenAdmin(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0"} {
		ln, err := listenAdmin(addr)
		if err != nil {
			if addr == "[::1]:0" {
				continue // no IPv6 loopback here
			}
			t.Fatalf("%s: %v", addr, err)
		}
		ln.Close()
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "example.com:0", "nonsense"} {
		if ln, err := listenAdmin(addr); err == nil {
			ln.Close()
			t.Errorf("%s was accepted", addr)
		}
	}
}
