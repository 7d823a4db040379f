package haproxy_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout/fleet/haproxy"
	"github.com/batonhq/baton/rollout/fleet/haproxy/haproxytest"
)

// rig is an HAProxy in front of two blue (v1) and two green (v2)
// backends in the listen section "app", with HTTP health checks; green
// starts in maintenance.
type rig struct {
	p           *haproxy.Process
	blue, green []*haproxytest.Backend
	sw          *haproxy.Switch
	url         string
}

func newRig(t *testing.T, delay time.Duration, o haproxy.SwitchOptions) *rig {
	t.Helper()
	haproxytest.Binary(t)
	r := &rig{}
	var servers []haproxy.Server
	for i := range 2 {
		for _, v := range []string{"v1", "v2"} {
			b, err := haproxytest.NewBackend(v, delay)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(b.Kill)
			name := map[string]string{"v1": "blue", "v2": "green"}[v] + string(rune('1'+i))
			servers = append(servers, haproxy.Server{Name: name, Address: b.Addr(), Disabled: v == "v2"})
			if v == "v1" {
				r.blue = append(r.blue, b)
			} else {
				r.green = append(r.green, b)
			}
		}
	}
	r.p = haproxytest.Start(t, haproxy.Config{Backends: []haproxy.Backend{{
		Name: "app", Servers: servers, HealthPath: "/healthz", CheckInterval: 100 * time.Millisecond,
	}}})
	r.url = "http://" + r.p.Addr("app") + "/"
	o.Client, o.Backend = r.p.Client(), "app"
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Blue.Servers == nil {
		o.Blue.Servers = []string{"blue1", "blue2"}
	}
	if o.Green.Servers == nil {
		o.Green.Servers = []string{"green1", "green2"}
	}
	sw, err := haproxy.NewSwitch(o)
	if err != nil {
		t.Fatal(err)
	}
	r.sw = sw
	return r
}

func inFlight(bs []*haproxytest.Backend) int {
	n := 0
	for _, b := range bs {
		n += b.InFlight()
	}
	return n
}

func served(bs []*haproxytest.Backend) int {
	n := 0
	for _, b := range bs {
		n += b.Served()
	}
	return n
}

// await polls cond until it holds, or fails t after 20 s naming what.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testchild.Eventually(t, what, 20*time.Second, 10*time.Millisecond, func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	})
}

// statuses returns "name=STATUS" of every server of app, for messages and
// checks.
func statuses(t *testing.T, c *haproxy.Client) map[string]string {
	t.Helper()
	st, err := c.Stats(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range st {
		out[s.Server] = s.Status
	}
	return out
}

// checkServing fails t unless exactly the servers with prefix serve.
func checkServing(t *testing.T, c *haproxy.Client, prefix string) {
	t.Helper()
	st, err := c.Stats(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Serving() != strings.HasPrefix(s.Server, prefix) {
			t.Errorf("server %s: status %s weight %d; want only %s* serving", s.Server, s.Status, s.Weight, prefix)
		}
	}
}

// checkAll fails t unless every request of reqs succeeded with version v.
func checkAll(t *testing.T, what string, reqs []haproxytest.Request, v string) {
	t.Helper()
	bad := 0
	for _, r := range reqs {
		if r.Err != nil || r.Version != v {
			if bad < 5 {
				t.Errorf("%s: request started %s: version %q, error %v; want %s", what, r.Start.Format("15:04:05.000"), r.Version, r.Err, v)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d requests not answered by %s", what, bad, len(reqs), v)
	}
}
