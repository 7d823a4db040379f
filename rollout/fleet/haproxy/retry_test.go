package haproxy_test

import (
	"testing"
	"time"

	"github.com/batonhq/baton/rollout/fleet/haproxy"
	"github.com/batonhq/baton/rollout/fleet/haproxy/haproxytest"
)

// With Backend.Retry, a server killed without a drain (a host's kill -9)
// costs the clients nothing: what it had in progress is resent to the
// other server, and new requests go there once its health check fails.
func TestRetryRidesOverAKilledServer(t *testing.T) {
	haproxytest.Binary(t)
	var bs []*haproxytest.Backend
	var servers []haproxy.Server
	for _, name := range []string{"host1", "host2"} {
		b, err := haproxytest.NewBackend("v1", 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Kill)
		bs = append(bs, b)
		servers = append(servers, haproxy.Server{Name: name, Address: b.Addr()})
	}
	p := haproxytest.Start(t, haproxy.Config{Backends: []haproxy.Backend{{
		Name: "app", Servers: servers, Retry: true, HealthPath: "/healthz", CheckInterval: 100 * time.Millisecond,
	}}})
	load := haproxytest.StartLoad("http://"+p.Addr("app")+"/", 8)
	await(t, "requests in progress on host1", func() bool { return bs[0].InFlight() >= 2 })
	bs[0].Kill()
	n := bs[1].Served()
	await(t, "host2 serving", func() bool { return bs[1].Served() >= n+40 })
	reqs := load.Stop()
	if f := haproxytest.Failed(reqs); len(f) > 0 {
		t.Errorf("%d of %d requests failed after host1 was killed; first: %v", len(f), len(reqs), f[0].Err)
	}
}
