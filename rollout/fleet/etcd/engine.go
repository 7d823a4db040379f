package etcd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/batonhq/baton/rollout/fleet"
)

// pingKey is read by Ping: any key will do, the read is what matters.
const pingKey = "baton/ping"

// Engine is a fleet.Engine on an etcd v3 cluster. Its zero value is not
// usable: use New or Open.
type Engine struct {
	c      *clientv3.Client
	owned  bool
	ctx    context.Context // cancelled by Close: stops keep-alives and watches
	cancel context.CancelFunc

	wg sync.WaitGroup // the watches' goroutines, waited for by Close
	// campaigns counts the goroutines of campaigns (see campaign): they
	// end when the client reaches the server or is closed, so Close waits
	// for them after closing an owned client.
	campaigns sync.WaitGroup

	mu     sync.Mutex
	closed bool
}

var _ fleet.Engine = (*Engine)(nil)
var _ fleet.Compactor = (*Engine)(nil)

// New returns an Engine on c. The caller keeps c and closes it after the
// Engine.
func New(c *clientv3.Client) (*Engine, error) {
	if c == nil {
		return nil, errors.New("fleet/etcd: New: nil client")
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{c: c, ctx: ctx, cancel: cancel}, nil
}

// Open connects to etcd with cfg and returns an Engine that owns the
// client (Close closes it). A zero cfg.DialTimeout dials in the
// background: Open returns at once and the first calls wait for the
// connection.
func Open(cfg clientv3.Config) (*Engine, error) {
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("fleet/etcd: connecting to %v: %w", cfg.Endpoints, err)
	}
	e, _ := New(c)
	e.owned = true
	return e, nil
}

// Client returns the etcd client.
func (e *Engine) Client() *clientv3.Client { return e.c }

// Close stops the engine's keep-alives and watches (its leases are left to
// expire on the server) and, for an Engine from Open, closes the client
// and waits for abandoned campaigns to end. With a client of the caller's
// (New), an abandoned campaign ends when the caller closes the client.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	if e.owned {
		err := e.c.Close()
		e.campaigns.Wait()
		return err
	}
	return nil
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// wrap gives an etcd error the fleet's meaning: unreachable, lease lost,
// or closed.
func (e *Engine) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, context.Canceled) && e.isClosed():
		return fmt.Errorf("fleet/etcd: %s: %w", what, fleet.ErrClosed)
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return fmt.Errorf("fleet/etcd: %s: %w (%w)", what, fleet.ErrLeaseLost, err)
	case errors.Is(err, context.DeadlineExceeded), status.Code(err) == codes.Unavailable,
		status.Code(err) == codes.DeadlineExceeded, errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrTimeout):
		return fmt.Errorf("fleet/etcd: %s: %w: %w", what, fleet.ErrUnreachable, err)
	}
	return fmt.Errorf("fleet/etcd: %s: %w", what, err)
}

func doc(kv *mvccpb.KeyValue) fleet.Document {
	return fleet.Document{Key: string(kv.Key), Value: kv.Value, Revision: kv.ModRevision, Created: kv.CreateRevision, Lease: fleet.LeaseID(kv.Lease)}
}

// Get implements fleet.Engine (a linearizable read).
func (e *Engine) Get(ctx context.Context, key string) (fleet.Document, error) {
	if err := fleet.ValidKey(key); err != nil {
		return fleet.Document{}, err
	}
	resp, err := e.c.Get(ctx, key)
	if err != nil {
		return fleet.Document{}, e.wrap("get "+key, err)
	}
	if len(resp.Kvs) == 0 {
		return fleet.Document{}, fmt.Errorf("%w: %s", fleet.ErrNotFound, key)
	}
	return doc(resp.Kvs[0]), nil
}

// List implements fleet.Engine (a linearizable read).
func (e *Engine) List(ctx context.Context, prefix string) ([]fleet.Document, int64, error) {
	if err := fleet.ValidPrefix(prefix); err != nil {
		return nil, 0, err
	}
	resp, err := e.c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, e.wrap("list "+prefix, err)
	}
	docs := make([]fleet.Document, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		docs[i] = doc(kv)
	}
	return docs, resp.Header.Revision, nil
}

// Commit implements fleet.Engine with one etcd Txn: a compare per op (create
// revision 0 for absence, mod revision for a revision) and, when fenced,
// a compare of the leader key's create revision with the term, so the
// server refuses the write in the same step that checks leadership.
func (e *Engine) Commit(ctx context.Context, t fleet.Txn) (int64, error) {
	if err := fleet.ValidTxn(t); err != nil {
		return 0, err
	}
	var cmps []clientv3.Cmp
	var then, els []clientv3.Op
	var fence *leadership
	if t.Fence != nil {
		l, ok := t.Fence.(*leadership)
		if !ok || l.e != e {
			return 0, errors.New("fleet/etcd: Commit: the fence is not a leadership of this engine")
		}
		fence = l
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.term))
		els = append(els, clientv3.OpGet(l.key))
	}
	for _, op := range t.Ops {
		switch {
		case op.Prev == 0:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(op.Key), "=", 0))
		case op.Prev > 0:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(op.Key), "=", op.Prev))
		}
		if op.Delete {
			then = append(then, clientv3.OpDelete(op.Key))
		} else {
			var opts []clientv3.OpOption
			if op.Lease != 0 {
				opts = append(opts, clientv3.WithLease(clientv3.LeaseID(op.Lease)))
			}
			then = append(then, clientv3.OpPut(op.Key, string(op.Value), opts...))
		}
		els = append(els, clientv3.OpGet(op.Key))
	}
	resp, err := e.c.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
	if err != nil {
		return 0, e.wrap("commit", err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	rs := resp.Responses
	if fence != nil {
		kvs := rs[0].GetResponseRange().Kvs
		if len(kvs) == 0 || kvs[0].CreateRevision != fence.term {
			fence.lose()
			cur := int64(0)
			if lr, err := e.c.Get(ctx, fence.election+"/", clientv3.WithFirstCreate()...); err == nil && len(lr.Kvs) > 0 {
				cur = lr.Kvs[0].CreateRevision
			}
			return 0, &fleet.FenceError{Election: fence.election, Term: fence.term, Current: cur}
		}
		rs = rs[1:]
	}
	for i, op := range t.Ops {
		kvs := rs[i].GetResponseRange().Kvs
		got := int64(0)
		if len(kvs) > 0 {
			got = kvs[0].ModRevision
		}
		if op.Prev != fleet.Any && got != op.Prev {
			return 0, &fleet.ConflictError{Key: op.Key, Want: op.Prev, Got: got}
		}
	}
	// A compare failed and then held when read back: another write came
	// and went in between.
	return 0, &fleet.ConflictError{Key: t.Ops[0].Key, Want: t.Ops[0].Prev, Got: -1}
}

// Compact implements fleet.Compactor.
func (e *Engine) Compact(ctx context.Context, revision int64) error {
	_, err := e.c.Compact(ctx, revision)
	return e.wrap("compact", err)
}

// Ping implements fleet.Engine with a linearizable read, which needs the
// cluster's leader and a quorum.
func (e *Engine) Ping(ctx context.Context) error {
	if e.isClosed() {
		return fleet.ErrClosed
	}
	_, err := e.c.Get(ctx, pingKey, clientv3.WithCountOnly())
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("fleet/etcd: ping: %w: %w", fleet.ErrUnreachable, err)
	}
	return nil
}

// ttlSeconds rounds ttl up to etcd's whole seconds.
func ttlSeconds(ttl time.Duration) int64 {
	return int64(math.Ceil(ttl.Seconds()))
}
