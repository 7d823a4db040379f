package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultElection is the driver's election when DriverOptions.Election is
// empty: one driver for the fleet.
const DefaultElection = "driver"

// ErrStepDown, returned (wrapped) by a Drive function, makes the Driver
// resign and Run return: this instance stops campaigning (for example
// after it handed the drive to the process that replaced it).
var ErrStepDown = errors.New("fleet: driver steps down")

// DriverOptions configure NewDriver. Drive is required (the zero value is
// refused); an empty Election means DefaultElection.
type DriverOptions struct {
	// Election names the election, a key segment under
	// Layout.Election. Empty means DefaultElection.
	Election string
	// Drive runs while this member leads, with a context cancelled when
	// the leadership is lost or Run's context ends, and must return then.
	// If it returns while the leadership holds, the member keeps leading,
	// idle, until the leadership is lost (so the fleet does not churn
	// through leaders that each find nothing to do); an error wrapping
	// ErrStepDown resigns instead.
	Drive func(ctx context.Context, l *Lead) error
}

// LeaderInfo says who leads an election: the value a Driver campaigns
// with. The zero value is no leader.
type LeaderInfo struct {
	Member  string `json:"member"`
	Host    string `json:"host"`
	Address string `json:"address,omitempty"`
	Term    int64  `json:"-"`
}

// Driver campaigns for the fleet's leadership on behalf of a Member and
// runs Drive while it leads: when the leader dies, is stopped or is cut
// off, its lease expires and another member's Driver takes over within the
// lease TTL and drives from the stored state. The zero value is not
// usable; use NewDriver.
type Driver struct {
	m        *Member
	o        DriverOptions
	election string

	mu      sync.Mutex
	lead    *Lead
	changed chan struct{}
}

// NewDriver returns a Driver for m; Run starts it.
func NewDriver(m *Member, o DriverOptions) (*Driver, error) {
	if o.Drive == nil {
		return nil, errors.New("fleet: NewDriver: DriverOptions.Drive is required")
	}
	if o.Election == "" {
		o.Election = DefaultElection
	}
	el := m.keys.Election(o.Election)
	if err := ValidKey(el); err != nil {
		return nil, fmt.Errorf("fleet: NewDriver: election %q: %w", o.Election, err)
	}
	return &Driver{m: m, o: o, election: el, changed: make(chan struct{})}, nil
}

// Lead is one leadership of a Driver: its term, the fenced Store of the
// rollouts, and fenced writes of any document. Every write made through a
// Lead is refused by the engine once the leadership is lost. The zero
// value is not usable.
type Lead struct {
	d     *Driver
	l     Leadership
	store *Store
}

// Term is the leadership's fencing term: it grows with every new leader.
func (l *Lead) Term() int64 { return l.l.Term() }

// Member is the member that leads.
func (l *Lead) Member() *Member { return l.d.m }

// Done is closed when the leadership is known lost here.
func (l *Lead) Done() <-chan struct{} { return l.l.Done() }

// Store is the rollout.Store whose every Save is fenced by this
// leadership.
func (l *Lead) Store() *Store { return l.store }

// Commit writes ops atomically, fenced by this leadership.
func (l *Lead) Commit(ctx context.Context, ops ...Op) (int64, error) {
	rev, err := l.d.m.e.Commit(ctx, Txn{Fence: l.l, Ops: ops})
	if errors.Is(err, ErrFenced) {
		l.fenced()
	}
	return rev, err
}

func (l *Lead) fenced() {
	l.d.m.tel.fenced.Add(context.Background(), 1, l.d.m.tel.attrs)
	l.d.m.log.Warn("fleet: a write of this former leader was refused (fenced)", "term", l.l.Term())
}

// Leading returns the current term while this member leads.
func (d *Driver) Leading() (term int64, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lead == nil {
		return 0, false
	}
	return d.lead.Term(), true
}

// Changed returns a channel closed when this member starts or stops
// leading.
func (d *Driver) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

func (d *Driver) setLead(l *Lead) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lead = l
	close(d.changed)
	d.changed = make(chan struct{})
}

// Leader returns who leads the driver's election now, from any member.
func (d *Driver) Leader(ctx context.Context) (LeaderInfo, error) {
	v, term, err := d.m.e.Leader(ctx, d.election)
	if err != nil {
		return LeaderInfo{}, err
	}
	var li LeaderInfo
	if err := json.Unmarshal(v, &li); err != nil {
		return LeaderInfo{}, fmt.Errorf("fleet: leader record of %s: %w", d.election, err)
	}
	li.Term = term
	return li, nil
}

// Run campaigns, drives while leading, steps down when the leadership is
// lost, and campaigns again, until ctx ends (it returns ctx.Err()) or
// Drive steps down (it returns that error). A member whose registration
// lapsed campaigns again once it is registered anew.
func (d *Driver) Run(ctx context.Context) error {
	m := d.m
	info := m.Info()
	value, _ := json.Marshal(LeaderInfo{Member: info.ID, Host: info.Host, Address: info.Address})
	backoff := 100 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		lease, leaseCh := m.Lease()
		if lease == nil {
			select {
			case <-leaseCh:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		l, err := m.e.Campaign(ctx, d.election, lease, value)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, ErrLeaseLost) {
				// The member registers again with a new lease: wait for it.
				select {
				case <-leaseCh:
				case <-ctx.Done():
					return ctx.Err()
				}
			} else {
				m.log.Warn("fleet: campaign failed; trying again", "election", d.election, "err", err, "retry_in", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				}
				backoff = min(2*backoff, m.o.LeaseTTL)
			}
			continue
		}
		backoff = 100 * time.Millisecond
		if err := d.drive(ctx, l); errors.Is(err, ErrStepDown) {
			return err
		}
	}
}

// drive runs one leadership to its end.
func (d *Driver) drive(ctx context.Context, l Leadership) error {
	m := d.m
	lead := &Lead{d: d, l: l}
	lead.store = newStore(m.e, m.keys, l, l.Lease().TTL(), lead.fenced)
	m.tel.takeovers.Add(context.Background(), 1, m.tel.attrs)
	m.tel.leading.Store(1)
	d.setLead(lead)
	m.log.Info("fleet: leading", "election", d.election, "term", l.Term())
	lctx, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-l.Done():
		case <-lctx.Done():
		}
		cancel()
	}()
	defer func() { cancel(); <-watched }()
	err := d.o.Drive(lctx, lead)
	if err == nil || !errors.Is(err, ErrStepDown) {
		if err != nil && lctx.Err() == nil {
			m.log.Warn("fleet: drive ended; leading idle until the leadership is lost", "term", l.Term(), "err", err)
		}
		<-lctx.Done()
	}
	cancel()
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), m.o.ProbeInterval)
	_ = l.Resign(rctx)
	rcancel()
	m.tel.leading.Store(0)
	d.setLead(nil)
	m.log.Info("fleet: stepped down", "election", d.election, "term", l.Term())
	return err
}
