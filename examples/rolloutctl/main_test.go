package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/rollouttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRolloutctlOverUnixSocketAndLoopback(t *testing.T) {
	ctx := context.Background()
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	w := &rollouttest.Weights{Recorder: &rollouttest.Recorder{}}
	r, err := rollout.New(ctx, rollout.Plan{ID: "ctl", Steps: []rollout.Step{
		rollout.SetWeight(w, 500).Named("canary-5"),
		rollout.PauseUntilPromoted().Named("hold"),
		rollout.SetWeight(w, 10000).Named("full"),
		rollout.PauseUntilPromoted().Named("hold2"),
	}}, rollout.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := rollout.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	h := rollout.NewHandler(r, rollout.HandlerOptions{})
	srv := rollout.ServeAdmin(ln, h)
	defer srv.Close()
	tcp, err := rollout.ListenLoopback("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv2 := rollout.ServeAdmin(tcp, h)
	defer srv2.Close()

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	var runErr error
	ran := false
	wait := func() error {
		if !ran {
			runErr, ran = <-done, true
		}
		return runErr
	}
	defer func() { cancel(); wait() }()
	waitWaiting(t, r, "hold")

	ctl := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, _ := ctl("-socket", sock, "status")
	if code != 0 || !strings.Contains(out, "rollout ctl: running") || !strings.Contains(out, "hold") || !strings.Contains(out, "running (waiting)") {
		t.Fatalf("status %d:\n%s", code, out)
	}
	if code, out, errs := ctl("-socket", sock, "resume"); code != 1 || !strings.Contains(errs, "409 Conflict") || !strings.Contains(errs, "not paused") {
		t.Fatalf("resume %d %s %s", code, out, errs)
	}
	if code, out, errs := ctl("-addr", tcp.Addr().String(), "promote"); code != 0 || !strings.Contains(out, "promote: accepted") {
		t.Fatalf("promote %d %s %s", code, out, errs)
	}
	waitWaiting(t, r, "hold2")
	if code, _, errs := ctl("-socket", sock, "pause"); code != 0 {
		t.Fatal(errs)
	}
	if code, out, errs := ctl("-socket", sock, "abort", "error", "rate", "up"); code != 0 || !strings.Contains(out, "abort: accepted") {
		t.Fatalf("abort %d %s %s", code, out, errs)
	}
	if err := wait(); !strings.Contains(errString(err), "rolled back") {
		t.Fatalf("run: %v", err)
	}
	code, out, _ = ctl("-socket", sock, "status")
	if code != 0 || !strings.Contains(out, "rolled-back") || !strings.Contains(out, "error rate up") {
		t.Fatalf("status after abort:\n%s", out)
	}
	// Usage errors.
	if code, _, _ := ctl("status"); code != 2 {
		t.Fatal("no -socket/-addr accepted")
	}
	if code, _, errs := ctl("-addr", "0.0.0.0:1", "status"); code != 2 || !strings.Contains(errs, "loopback") {
		t.Fatal("non-loopback accepted:", errs)
	}
	if code, _, _ := ctl("-socket", sock, "explode"); code != 2 {
		t.Fatal("unknown command accepted")
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func waitWaiting(t *testing.T, r *rollout.Rollout, step string) {
	t.Helper()
	hang := time.After(30 * time.Second)
	for {
		ch := r.Changed()
		for _, s := range r.Status().Steps {
			if s.Name == step && s.Waiting {
				return
			}
		}
		select {
		case <-ch:
		case <-hang:
			t.Fatalf("step %s never waited", step)
		}
	}
}
