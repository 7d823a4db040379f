package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Applied is what a member reports it has put in force of one shared
// document (Layout.Shared: a canary weight, a flag document), at
// Layout.Applied(member, document), under the member's lease: it
// disappears with the member. Registry.Hosts shows it on the console's
// fleet page. The zero value is nothing applied.
type Applied struct {
	// Revision is the engine revision of the shared document in force on
	// the member: its version (0: none).
	Revision int64 `json:"revision"`
	// Weight is the canary weight in force, in basis points, for a
	// canary document; nil for any other document.
	Weight *uint32 `json:"weight,omitempty"`
	// Refused says why the latest version the member saw was not applied
	// as written; "" when it was.
	Refused string `json:"refused,omitempty"`
	// At is when the member applied it.
	At time.Time `json:"at"`
}

// Reporter keeps one Applied report of this member in the engine: Set
// records what is in force, and the Reporter's goroutine writes it under
// the member's lease, again under every new lease (a lease lost deletes
// it), and again every ProbeInterval after a failed write. The report
// written is always the latest Set; intermediate ones may be skipped. Make
// one with Member.ReportApplied; Close, or the member's Close, stops it. The zero value is not
// usable.
type Reporter struct {
	m      *Member
	key    string
	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	cur     Applied
	seq     uint64 // of cur; 0 until the first Set
	written uint64 // seq last written
}

// ReportApplied starts reporting what this member has put in force of the
// shared document (the name given to Layout.Shared, such as
// "canary/canary"). Nothing is written until the first Set. One
// goroutine, owned by the Reporter, writes until Close.
func (m *Member) ReportApplied(document string) (*Reporter, error) {
	key := m.keys.Applied(m.o.ID, document)
	if err := ValidKey(key); err != nil {
		return nil, fmt.Errorf("fleet: report of %q: %w", document, err)
	}
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithCancel(m.ctx)
	r := &Reporter{m: m, key: key, kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(r.done)
		r.run(ctx)
	}()
	return r, nil
}

// Set records a as what is in force now (At set to now when zero); it
// does not wait for the write.
func (r *Reporter) Set(a Applied) {
	if a.At.IsZero() {
		a.At = time.Now()
	}
	r.mu.Lock()
	r.cur = a
	r.seq++
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Close stops reporting; the last report written stays until the member's
// lease ends. It is idempotent.
func (r *Reporter) Close() error {
	r.cancel()
	<-r.done
	return nil
}

func (r *Reporter) run(ctx context.Context) {
	var lease Lease // the lease the last report was written under
	for {
		l, leaseCh := r.m.Lease()
		r.mu.Lock()
		a, seq, written := r.cur, r.seq, r.written
		r.mu.Unlock()
		var retry <-chan time.Time
		if seq != 0 && l != nil && (seq != written || l != lease) {
			if err := r.write(ctx, a, l); err != nil {
				if ctx.Err() != nil {
					return
				}
				r.m.log.Debug("fleet: writing a report", "key", r.key, "err", err)
				retry = time.After(r.m.o.ProbeInterval)
			} else {
				lease = l
				r.mu.Lock()
				r.written = seq
				r.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-leaseCh:
		case <-retry:
		}
	}
}

func (r *Reporter) write(ctx context.Context, a Applied, l Lease) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.m.o.LeaseTTL)
	defer cancel()
	_, err = r.m.e.Commit(ctx, Txn{Ops: []Op{{Key: r.key, Value: b, Prev: Any, Lease: l.ID()}}})
	return err
}
