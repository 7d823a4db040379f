package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemo runs the demo as a user does, as a separate process, and checks
// its verdicts: no failed request, release-v2 succeeded, release-v3 rolled
// back automatically to the old process. It takes about half a minute.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo (about 30 s)")
	}
	bin := filepath.Join(t.TempDir(), "demo")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-clients", "8", "-rate", "200")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = os.Environ()
	err := cmd.Run()
	text := out.String()
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, text)
	}
	for _, want := range []string{
		"failed requests: 0\n",
		"rollout release-v2: succeeded",
		"rollout release-v3: rolled-back",
		"canary weight back to 0%",
		`flag "nickname-ui" disabled`,
		`migration "add_nickname" rolled back`,
		"old process resumed: pid",
		"canary is worse than stable",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", text)
	}
}
