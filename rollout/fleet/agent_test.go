package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
)

func TestValidVersion(t *testing.T) {
	for _, v := range []string{"v1", "1.2.3", "v2.0.0-rc.1+build.5", "release_7"} {
		if err := fleet.ValidVersion(v); err != nil {
			t.Errorf("ValidVersion(%q) = %v", v, err)
		}
	}
	for _, v := range []string{"", ".", "..", "../v1", "v1/../../bin", "v 1", "$(reboot)", "v1;rm", "-v1", strings.Repeat("a", 65), "{version}"} {
		if err := fleet.ValidVersion(v); !errors.Is(err, fleet.ErrInvalidVersion) {
			t.Errorf("ValidVersion(%q) = %v, want ErrInvalidVersion", v, err)
		}
	}
}

func TestPathTemplate(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "v2", "svc")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "v3"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := fleet.PathTemplate(filepath.Join(dir, fleet.VersionPlaceholder, "svc"))
	if got, err := p.Binary("v2"); err != nil || got != bin {
		t.Fatalf("Binary(v2) = %q, %v; want %q", got, err, bin)
	}
	for v, want := range map[string]string{
		"../v2": "invalid version",
		"v9":    "no such file",
	} {
		if _, err := p.Binary(v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Binary(%q) = %v, want an error saying %q", v, err, want)
		}
	}
	flat := fleet.PathTemplate(filepath.Join(dir, fleet.VersionPlaceholder))
	if _, err := flat.Binary("v3"); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Errorf("a file without the executable bit: %v", err)
	}
	for _, bad := range []fleet.PathTemplate{"releases/{version}/svc", fleet.PathTemplate(dir + "/svc")} {
		if _, err := bad.Binary("v2"); err == nil {
			t.Errorf("template %q was accepted", bad)
		}
	}
}

// refusingUpgrader fails every upgrade, as a binary that does not start.
type refusingUpgrader struct{}

func (refusingUpgrader) UpgradeTo(_ context.Context, spec rollout.UpgradeSpec) error {
	return errors.New("the new process exited with status 1 before it was ready")
}

type anyBinary struct{}

func (anyBinary) Binary(v string) (string, error) { return "/releases/" + v, nil }

// TestRollingFailedUpgradeRollsBack: a host whose agent cannot apply the
// version reports why under its lease; the health gate fails on that
// report at once (not at its timeout) and the rollout rolls back, the
// host asked for the previous version again.
func TestRollingFailedUpgradeRollsBack(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ns := namespace(t)
		h := join(t, b.open(t, b.addr), ns, "h1", "v1")
		a, err := fleet.NewAgent(h, fleet.AgentOptions{Upgrader: refusingUpgrader{}, Binaries: anyBinary{}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		ran := make(chan error, 1)
		actx, stop := context.WithCancel(ctx)
		go func() { ran <- a.Run(actx) }()
		defer func() { stop(); <-ran }()

		d := join(t, b.open(t, b.addr), ns, "d", "driver")
		leads, _ := leader(t, d)
		l := awaitLead(t, leads, 10*time.Second, "the driver")
		steps, err := fleet.Rolling(l, fleet.RollingOptions{Hosts: []string{"h1"}, Version: "v2", Previous: "v1", HealthTimeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		r, err := rollout.New(ctx, rollout.Plan{ID: "failing", Steps: steps}, rollout.Options{Store: l.Store()})
		if err != nil {
			t.Fatal(err)
		}
		err = r.Run(ctx)
		if !errors.Is(err, rollout.ErrRolledBack) {
			t.Fatalf("Run = %v, want ErrRolledBack", err)
		}
		st := r.Status()
		if !strings.Contains(st.Steps[0].Error, "h1 did not apply v2") || !strings.Contains(st.Steps[0].Error, "status 1") {
			t.Fatalf("the batch's error %q does not carry the agent's report", st.Steps[0].Error)
		}
		des, err := fleet.ReadDesired(ctx, b.open(t, b.addr), fleet.NewLayout(ns), "h1")
		if err != nil || des.Version != "v1" || des.Term != l.Term() || des.Rollout != "" {
			t.Fatalf("desired state after the rollback: %+v, %v", des, err)
		}
		testchild.Eventually(t, "h1 to report v1 ready for the rollback's desired state", 10*time.Second, 20*time.Millisecond, func() error {
			o, err := fleet.ReadObserved(ctx, h.Engine(), h.Layout(), "h1")
			if err == nil && (o.Version != "v1" || o.State != fleet.StateReady || o.Error != "" || o.Desired < des.Revision) {
				err = fmt.Errorf("%+v", o)
			}
			return err
		})
	})
}
