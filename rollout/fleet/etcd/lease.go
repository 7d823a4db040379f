package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/batonhq/baton/rollout/fleet"
)

// lease is a concurrency.Session: etcd's client keeps it alive (every third
// of the TTL) and closes Done when the server says it expired or when no
// renewal succeeded for a whole TTL.
type lease struct {
	e   *Engine
	s   *concurrency.Session
	ttl time.Duration
}

// Grant implements fleet.Engine. etcd counts TTLs in whole seconds: ttl is
// rounded up, and the server may raise it to its minimum (1.5 times the
// election timeout; 2 s for a default single-node server).
func (e *Engine) Grant(ctx context.Context, ttl time.Duration) (fleet.Lease, error) {
	if e.isClosed() {
		return nil, fleet.ErrClosed
	}
	secs := ttlSeconds(ttl)
	if secs < 1 {
		secs = 1
	}
	resp, err := e.c.Grant(ctx, secs)
	if err != nil {
		return nil, e.wrap("grant", err)
	}
	s, err := concurrency.NewSession(e.c, concurrency.WithLease(resp.ID), concurrency.WithTTL(int(resp.TTL)), concurrency.WithContext(e.ctx))
	if err != nil {
		return nil, e.wrap("keep-alive", err)
	}
	return &lease{e: e, s: s, ttl: time.Duration(resp.TTL) * time.Second}, nil
}

func (l *lease) ID() fleet.LeaseID     { return fleet.LeaseID(l.s.Lease()) }
func (l *lease) TTL() time.Duration    { return l.ttl }
func (l *lease) Done() <-chan struct{} { return l.s.Done() }
func (l *lease) Revoke(ctx context.Context) error {
	l.s.Orphan()
	_, err := l.e.c.Revoke(ctx, l.s.Lease())
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return l.e.wrap("revoke", err)
	}
	return nil
}

// leadership is a won concurrency.Election. Its term is the create
// revision of its key: the leader is the live key with the lowest create
// revision, so successive leaders' terms only grow.
type leadership struct {
	e        *Engine
	el       *concurrency.Election
	election string
	key      string
	term     int64
	lease    *lease

	once sync.Once
	done chan struct{}
	stop func() bool
}

// Campaign implements fleet.Engine with concurrency.Election on the prefix
// election+"/".
func (e *Engine) Campaign(ctx context.Context, election string, l fleet.Lease, value []byte) (fleet.Leadership, error) {
	if err := fleet.ValidKey(election); err != nil {
		return nil, err
	}
	ls, ok := l.(*lease)
	if !ok || ls.e != e {
		return nil, errors.New("fleet/etcd: Campaign: the lease is not one of this engine")
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ls.s.Ctx(), cancel)
	defer stop()
	el := concurrency.NewElection(ls.s, election)
	if err := e.campaign(ctx, cctx, ls, el, string(value)); err != nil {
		// The session's context ends as soon as the lease is lost or
		// revoked (its Done channel a moment later).
		if ls.s.Ctx().Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("fleet/etcd: campaign %s: %w", election, fleet.ErrLeaseLost)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, e.wrap("campaign "+election, err)
	}
	ld := &leadership{e: e, el: el, election: election, key: el.Key(), term: el.Rev(), lease: ls, done: make(chan struct{})}
	ld.stop = context.AfterFunc(ls.s.Ctx(), ld.lose)
	return ld, nil
}

// campaign runs el.Campaign(cctx, value) and returns its error, or
// ctx.Err() as soon as ctx ends. etcd's Campaign, when its context ends
// while it waits, resigns with the client's own context: while the server
// is unreachable that resignation blocks until the client is closed, and a
// member cut off from etcd could not stop campaigning. So the campaign runs
// in a goroutine of the engine's; once abandoned it is left to finish, and
// if it won after all, its key is deleted (Resign with the engine's
// context, retried until it succeeds, the lease is gone or the engine
// closes), so an abandoned campaign never holds the election.
func (e *Engine) campaign(ctx, cctx context.Context, ls *lease, el *concurrency.Election, value string) error {
	done := make(chan error, 1)
	e.campaigns.Add(1)
	go func() {
		defer e.campaigns.Done()
		done <- el.Campaign(cctx, value)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	e.campaigns.Add(1)
	go func() {
		defer e.campaigns.Done()
		if err := <-done; err != nil {
			return // lost, cancelled or resigned by etcd's own clean-up
		}
		for e.ctx.Err() == nil && ls.s.Ctx().Err() == nil {
			rctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
			err := el.Resign(rctx)
			cancel()
			if err == nil {
				return
			}
		}
	}()
	return ctx.Err()
}

func (l *leadership) Election() string      { return l.election }
func (l *leadership) Term() int64           { return l.term }
func (l *leadership) Lease() fleet.Lease    { return l.lease }
func (l *leadership) Done() <-chan struct{} { return l.done }

func (l *leadership) lose() { l.once.Do(func() { close(l.done) }) }

// Resign deletes the leader key if it is still this leadership's.
func (l *leadership) Resign(ctx context.Context) error {
	defer l.lose()
	l.stop()
	_, err := l.e.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.term)).Then(clientv3.OpDelete(l.key)).Commit()
	return l.e.wrap("resign "+l.election, err)
}

// Leader implements fleet.Engine.
func (e *Engine) Leader(ctx context.Context, election string) ([]byte, int64, error) {
	if err := fleet.ValidKey(election); err != nil {
		return nil, 0, err
	}
	resp, err := e.c.Get(ctx, election+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return nil, 0, e.wrap("leader "+election, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%w: %s", fleet.ErrNoLeader, election)
	}
	return resp.Kvs[0].Value, resp.Kvs[0].CreateRevision, nil
}
