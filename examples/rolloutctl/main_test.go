package main

import (
	"bytes"
	"context"
	"os"
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

const release = `id: ctl-v1
version: v1
steps:
  - pause: {}
    name: hold
  - setWeight: {weight: 100}
`

// start checks a manifest here first (file and line), the service binds
// it; watch follows the rollout over the stable socket name, also when
// another process takes the drive and the name moves to it.
func TestRolloutctlStartAndWatchAcrossAHandoff(t *testing.T) {
	dir := t.TempDir()
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	w := &rollouttest.Weights{Recorder: &rollouttest.Recorder{}}
	driver := func() *rollout.Driver {
		d, err := rollout.NewDriver(context.Background(), rollout.DriverOptions{Store: store, Version: "v1",
			Bind: func(*rollout.Release) (rollout.Bindings, error) {
				return rollout.Bindings{Version: "v1", Weights: w}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	path := filepath.Join(dir, "admin.sock")
	sock, err := rollout.ListenAdmin(path)
	if err != nil {
		t.Fatal(err)
	}
	d1 := driver()
	srv1 := rollout.ServeAdmin(sock, d1.Handler(rollout.HandlerOptions{}))
	defer srv1.Close()
	ctl := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		return code, out.String(), errb.String()
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("id: x\nversion: v1\nsteps:\n  - setWeight: {weight: 20000}\n"), 0o600)
	if code, _, errs := ctl("-socket", path, "start", bad); code != 1 || !strings.Contains(errs, "bad.yaml:4: step 0: setWeight: weight 20000") {
		t.Fatalf("start with a bad manifest: %d %s", code, errs)
	}
	good := filepath.Join(dir, "release.yaml")
	os.WriteFile(good, []byte(release), 0o600)
	if code, out, errs := ctl("-socket", path, "start", good); code != 0 || !strings.Contains(out, "start: accepted") || !strings.Contains(out, "hold") {
		t.Fatalf("start: %d %s %s", code, out, errs)
	}
	if code, _, errs := ctl("-socket", path, "start", good); code != 1 || !strings.Contains(errs, `release "ctl-v1" is pending`) {
		t.Fatalf("start again: %d %s", code, errs)
	}
	ctx1, stop1 := context.WithCancel(context.Background())
	ran1 := make(chan error, 1)
	go func() { ran1 <- d1.Run(ctx1) }()
	waitWaiting(t, d1.Current(), "hold")

	type result struct {
		code     int
		out, err string
	}
	watched := make(chan result, 1)
	go func() {
		code, out, errs := ctl("-socket", path, "-wait", "200ms", "watch")
		watched <- result{code, out, errs}
	}()

	// The handoff: this process stops driving, another takes the drive
	// and the stable name moves to its socket.
	stop1()
	<-ran1
	other := path + ".other"
	ln2, err := rollout.ListenUnix(other)
	if err != nil {
		t.Fatal(err)
	}
	d2 := driver()
	srv2 := rollout.ServeAdmin(ln2, d2.Handler(rollout.HandlerOptions{}))
	defer srv2.Close()
	if err := os.Symlink(filepath.Base(other), path+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	ctx2, stop2 := context.WithCancel(context.Background())
	ran2 := make(chan error, 1)
	go func() { ran2 <- d2.Run(ctx2) }()
	defer func() { stop2(); <-ran2 }()
	waitWaiting(t, d2.Current(), "hold")
	if code, out, errs := ctl("-socket", path, "promote"); code != 0 {
		t.Fatalf("promote after the handoff: %d %s %s", code, out, errs)
	}
	select {
	case r := <-watched:
		if r.code != 0 || !strings.Contains(r.out, "hold: promoted by operator") || !strings.Contains(r.out, "rollout ctl-v1: succeeded") {
			t.Fatalf("watch: %d\n%s\n%s", r.code, r.out, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not end after the rollout succeeded")
	}
}
