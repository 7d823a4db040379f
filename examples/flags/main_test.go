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
