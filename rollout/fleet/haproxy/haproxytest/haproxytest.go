// Package haproxytest runs a real HAProxy for tests and load programs, with
// HTTP backends that answer their version and a load of clients that
// records every request. It is never imported by baton's library.
//
//	p := haproxytest.Start(t, haproxy.Config{Backends: []haproxy.Backend{{
//		Name: "app",
//		Servers: []haproxy.Server{
//			{Name: "blue1", Address: blue.Addr()},
//			{Name: "green1", Address: green.Addr(), Disabled: true},
//		},
//	}}})
//	load := haproxytest.StartLoad("http://"+p.Addr("app")+"/", 8)
//	...
//	res := load.Stop()
//
// Start skips the test, with the reason, when no haproxy is found (see
// haproxy.Find: $BATON_HAPROXY, PATH, /usr/sbin/haproxy).
package haproxytest

import (
	"context"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout/fleet/haproxy"
)

// Binary returns the haproxy executable, or skips t when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := haproxy.Find()
	if err != nil {
		t.Skipf("no HAProxy here, test skipped: %v", err)
	}
	return bin
}

// Start starts HAProxy with c for the length of t (Close at cleanup), or
// skips t when there is no haproxy. An empty c.Binary means Binary(t);
// an empty c.Dir, as for haproxy.Start, a directory of its own, removed at
// cleanup.
func Start(t testing.TB, c haproxy.Config) *haproxy.Process {
	t.Helper()
	if c.Binary == "" {
		c.Binary = Binary(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := haproxy.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
