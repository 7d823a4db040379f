package etcd

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/batonhq/baton/rollout/fleet"
)

// Watch implements fleet.Engine. etcd's client resumes a watch over a new
// connection from the last revision it received; if the client gives the
// watch up (an error other than compaction), Watch starts it again from the
// last revision delivered, so the caller sees no gap and no repetition.
func (e *Engine) Watch(ctx context.Context, prefix string, after int64) <-chan fleet.WatchResponse {
	out := make(chan fleet.WatchResponse, 1)
	if err := fleet.ValidPrefix(prefix); err != nil {
		out <- fleet.WatchResponse{Err: err}
		close(out)
		return out
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		out <- fleet.WatchResponse{Err: fleet.ErrClosed}
		close(out)
		return out
	}
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		e.watch(ctx, prefix, after, out)
	}()
	return out
}

const (
	minRewatch = 100 * time.Millisecond
	maxRewatch = 2 * time.Second
)

func (e *Engine) watch(ctx context.Context, prefix string, after int64, out chan<- fleet.WatchResponse) {
	defer close(out)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.ctx, cancel)()
	send := func(r fleet.WatchResponse) bool {
		select {
		case out <- r:
			return true
		case <-wctx.Done():
			return false
		}
	}
	backoff := minRewatch
	for {
		wch := e.c.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(after+1))
		for wr := range wch {
			if wr.CompactRevision != 0 {
				send(fleet.WatchResponse{Revision: after, Err: fmt.Errorf("fleet/etcd: watch %s from %d: %w (history starts at %d)", prefix, after+1, fleet.ErrCompacted, wr.CompactRevision)})
				return
			}
			if wr.Err() != nil {
				break
			}
			if len(wr.Events) == 0 {
				continue
			}
			r := fleet.WatchResponse{Events: make([]fleet.Event, 0, len(wr.Events))}
			for _, ev := range wr.Events {
				if ev.Kv.ModRevision <= after {
					continue // already delivered before a resume
				}
				fe := fleet.Event{Doc: doc(ev.Kv)}
				if ev.Type == mvccpb.DELETE {
					fe.Type = fleet.Delete
					fe.Doc.Value = nil
				}
				r.Events = append(r.Events, fe)
				after = ev.Kv.ModRevision
			}
			if len(r.Events) == 0 {
				continue
			}
			r.Revision = after
			if !send(r) {
				return
			}
			backoff = minRewatch
		}
		if wctx.Err() != nil {
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-wctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, maxRewatch)
	}
}
