package etcd_test

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/etcd"
	"github.com/batonhq/baton/rollout/fleet/etcd/etcdtest"
	"github.com/batonhq/baton/rollout/fleet/fleettest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, addr string) fleet.Engine {
	e, err := etcd.Open(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestConformance(t *testing.T) {
	srv := etcdtest.New(t, etcdtest.Options{})
	fleettest.TestEngine(t, fleettest.Backend{Addr: srv.Endpoint(), Open: open})
}
