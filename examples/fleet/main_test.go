//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	takeoverLine    = regexp.MustCompile(`(?m)^leader takeover: ([0-9.]+(ms|s))\n`)
	fleetPass       = regexp.MustCompile(`(?m)^fleet analysis: pass \(3 hosts, [1-9][0-9]* requests\) canary-analysis-10000: `)
	propagationLine = regexp.MustCompile(`(?m)^propagation p99: ([0-9.]+(µs|ms|s))$`)
	lastLines       = regexp.MustCompile(`leader takeover: [0-9.]+(ms|s)\nfailed requests: 0\n$`)
)

// TestExample runs the example as a user does, as separate processes, on
// embedded etcd (with its client-side balancer, and behind HAProxy when it
// is installed) and, with BATON_TEST_POSTGRES_DSN, on PostgreSQL, with a
// short bake, and checks its verdicts: the leader was killed and another
// host took over, release-v2 succeeded on every host, release-v3 was
// rolled back on every host, release-v4 given back by its first host in
// its bake to the warm v2 process, the fleet canary of the new checkout
// passed its fleet-wide analyses and the flag ramp with no key changing
// variant across hosts, and the report ends with the takeover and "failed
// requests: 0".
func TestExample(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole example (about 20 s per engine)")
	}
	bin := filepath.Join(t.TempDir(), "fleet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	run := func(t *testing.T, args ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"-bake", "1s", "-clients", "4", "-rate", "100"}, args...)...)
		var out, errs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errs
		err := cmd.Run()
		text := out.String()
		if err != nil {
			t.Fatalf("the example failed: %v\n%s\n%s", err, text, tail(errs.String(), 60))
		}
		for _, want := range []string{
			"SIGKILL to the leader, host3",
			"rollout release-v2: succeeded",
			"rollout release-v3: rolled-back",
			"median answer time of",
			"1 instance(s) back on v2",
			"rollout release-v4: rolled-back",
			"its v2 process resumed (same pid",
			"the v4 process left during its bake",
			"rollout release-checkout: succeeded",
			"sticky across hosts: 0 of 100 keys changed variant\n",
			"flag \"new-checkout\" at 100%",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("the report lacks %q", want)
			}
		}
		if !fleetPass.MatchString(text) {
			t.Errorf("no line says the fleet analysis passed on 3 hosts")
		}
		if m := propagationLine.FindStringSubmatch(text); m == nil {
			t.Errorf("the report lacks the propagation p99")
		} else {
			t.Logf("propagation p99: %s", m[1])
		}
		if !lastLines.MatchString(text) {
			t.Errorf("the report does not end with the takeover and failed requests: 0")
		}
		if m := takeoverLine.FindStringSubmatch(text); m != nil {
			t.Logf("leader takeover: %s", m[1])
		}
		if t.Failed() {
			t.Logf("output:\n%s\n%s", text, tail(errs.String(), 60))
		}
	}
	t.Run("etcd", func(t *testing.T) { run(t) })
	t.Run("haproxy", func(t *testing.T) {
		if _, err := exec.LookPath("haproxy"); err != nil {
			if _, err := os.Stat("/usr/sbin/haproxy"); err != nil {
				t.Skip("haproxy is not installed: skipping the example behind HAProxy (Debian: apt-get install haproxy)")
			}
		}
		run(t, "-lb", "haproxy")
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := os.Getenv("BATON_TEST_POSTGRES_DSN")
		if dsn == "" {
			t.Skip("BATON_TEST_POSTGRES_DSN is not set: skipping the example on PostgreSQL")
		}
		run(t, "-engine", "postgres", "-db", dsn, "-schema", "fa_fleet_example")
	})
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
