package haproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/batonhq/baton/rollout"
)

// Defaults of SwitchOptions.
const (
	DefaultReadyTimeout = 30 * time.Second
	DefaultDrainTimeout = 30 * time.Second
	DefaultPollInterval = 50 * time.Millisecond
)

// Group is one colour of a blue-green pair: servers of the switch's
// backend. The zero value has no servers (NewSwitch refuses it).
type Group struct {
	// Servers are the group's server names in the backend.
	Servers []string
	// Weight, when not zero, is set on every server of the group (1..
	// MaxWeight) when it takes traffic. Zero leaves the weights of the
	// configuration (a group whose servers have weight 0 then never
	// becomes ready).
	Weight int
}

// SwitchOptions configure NewSwitch. Client, Backend, Blue and Green are
// required; the other zero fields mean the documented defaults.
type SwitchOptions struct {
	// Client talks to the HAProxy in front of both groups.
	Client *Client
	// Backend is the backend (or listen section) holding both groups.
	Backend string
	// Blue is the group serving before the switch, Green the one after.
	Blue, Green Group
	// ReadyTimeout bounds the wait for every server of the incoming group
	// to be up with a weight. Zero means DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// DrainTimeout bounds the wait for the outgoing group's sessions to
	// end. Zero means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// AllowUndrained makes a drain that timed out a success (logged, with
	// the sessions left) instead of an ErrDrainTimeout: for long-lived
	// connections that never end on their own.
	AllowUndrained bool
	// PollInterval is the pause between two "show stat" while waiting.
	// Zero means DefaultPollInterval.
	PollInterval time.Duration
	// Logger receives a line per switch. Nil means slog.Default().
	Logger *slog.Logger
}

// Switch moves a backend's traffic from its blue group to its green group
// and back. Its methods may be called again, each setting absolute
// states, so a repeated call has the effect of one; two calls for the
// same backend must not overlap (the rollout runs one step at a time). The zero value is not usable:
// use NewSwitch.
type Switch struct {
	o SwitchOptions
}

// NewSwitch checks o and returns its Switch. It sends nothing.
func NewSwitch(o SwitchOptions) (*Switch, error) {
	if o.Client == nil {
		return nil, errors.New("haproxy: switch needs a Client")
	}
	if err := validName("backend", o.Backend); err != nil {
		return nil, err
	}
	seen := map[string]string{}
	for _, g := range []struct {
		colour string
		g      Group
	}{{"blue", o.Blue}, {"green", o.Green}} {
		if len(g.g.Servers) == 0 {
			return nil, fmt.Errorf("haproxy: switch of %s: the %s group has no servers", o.Backend, g.colour)
		}
		if g.g.Weight < 0 || g.g.Weight > MaxWeight {
			return nil, fmt.Errorf("haproxy: switch of %s: %s weight %d is outside 0..%d", o.Backend, g.colour, g.g.Weight, MaxWeight)
		}
		for _, s := range g.g.Servers {
			if err := validName("server", s); err != nil {
				return nil, err
			}
			if c, dup := seen[s]; dup {
				return nil, fmt.Errorf("haproxy: switch of %s: server %s is in the %s group and the %s group", o.Backend, s, c, g.colour)
			}
			seen[s] = g.colour
		}
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ReadyTimeout < 0 || o.DrainTimeout < 0 || o.PollInterval < 0 {
		return nil, fmt.Errorf("haproxy: switch of %s: negative timeout or interval", o.Backend)
	}
	return &Switch{o: o}, nil
}

// ToGreen makes the green group take the backend's traffic and the blue
// group drain: green's servers are set ready (and to Green.Weight), then,
// once every one of them is up with a weight and
// has passed a health check (when it has checks), blue's are set to drain, and
// ToGreen waits until blue has no session left. When it returns nil, no
// request is in progress on blue and none will be sent there: blue may be
// stopped. On error the backend may be between the two (both groups
// ready, or blue draining): call ToGreen again or ToBlue.
func (s *Switch) ToGreen(ctx context.Context) error {
	return s.move(ctx, "green", s.o.Green, "blue", s.o.Blue)
}

// ToBlue is the flip back: ToGreen with the colours exchanged. Blue's
// servers take traffic again (they must still run) and green drains.
func (s *Switch) ToBlue(ctx context.Context) error {
	return s.move(ctx, "blue", s.o.Blue, "green", s.o.Green)
}

// Step returns the switch as a rollout step named "haproxy-switch-" and
// the backend's name: it runs ToGreen, and its rollback runs ToBlue. A
// step interrupted by a crash runs ToGreen again, which is harmless.
func (s *Switch) Step() rollout.Step {
	return rollout.Hook(func(ctx context.Context, _ rollout.HookEvent) error {
		return s.ToGreen(ctx)
	}, rollout.HookOptions{
		OnRollback: func(ctx context.Context, _ rollout.HookEvent) error { return s.ToBlue(ctx) },
		Metadata:   map[string]string{"haproxy-backend": s.o.Backend},
	}).Named("haproxy-switch-" + s.o.Backend)
}

func (s *Switch) move(ctx context.Context, inName string, in Group, outName string, out Group) error {
	start := time.Now()
	c, b := s.o.Client, s.o.Backend
	for _, srv := range in.Servers {
		if in.Weight > 0 {
			if err := c.SetWeight(ctx, b, srv, in.Weight); err != nil {
				return fmt.Errorf("switch %s to %s: %w", b, inName, err)
			}
		}
		if err := c.SetState(ctx, b, srv, Ready); err != nil {
			return fmt.Errorf("switch %s to %s: %w", b, inName, err)
		}
	}
	// Draining the outgoing group before the incoming one serves would
	// leave the backend with no server: HAProxy answers 503.
	err := s.wait(ctx, in.Servers, s.o.ReadyTimeout, ErrNotReady, func(st ServerStat) string {
		switch {
		case st.Checked():
			return ""
		case st.Weight == 0:
			return st.Status + ", weight 0"
		case st.CheckStatus == "":
			return st.Status + ", no check passed yet"
		}
		return st.Status + ", check " + st.CheckStatus
	})
	if err != nil {
		return fmt.Errorf("switch %s to %s: %w", b, inName, err)
	}
	for _, srv := range out.Servers {
		if err := c.SetState(ctx, b, srv, Drain); err != nil {
			return fmt.Errorf("switch %s to %s: %w", b, inName, err)
		}
	}
	switched := time.Since(start)
	// Drain, not maint: a server in maintenance is out at once, and the
	// sessions it still has are what a stop of its process would cut.
	err = s.wait(ctx, out.Servers, s.o.DrainTimeout, ErrDrainTimeout, func(st ServerStat) string {
		if n := st.Sessions + st.Queued; n > 0 {
			return fmt.Sprintf("%d sessions", n)
		}
		return ""
	})
	var ge *GroupError
	if errors.As(err, &ge) && s.o.AllowUndrained {
		s.o.Logger.Warn("haproxy: switched with sessions left on the drained group", "backend", b, "to", inName, "drained", outName, "left", ge.Error())
		err = nil
	}
	if err != nil {
		return fmt.Errorf("switch %s to %s: %w", b, inName, err)
	}
	s.o.Logger.Info("haproxy: switched", "backend", b, "to", inName, "drained", outName,
		"switched_after", switched, "drained_after", time.Since(start))
	return nil
}

// wait polls the backend's stats until bad returns "" for every server
// named, or timeout: then it returns a *GroupError with each bad server's
// reason. A server missing from the stats is bad.
func (s *Switch) wait(ctx context.Context, servers []string, timeout time.Duration, sentinel error, bad func(ServerStat) string) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
		stats, err := s.o.Client.Stats(ctx, s.o.Backend)
		if err != nil {
			return err
		}
		byName := make(map[string]ServerStat, len(stats))
		for _, st := range stats {
			byName[st.Server] = st
		}
		left := map[string]string{}
		for _, srv := range servers {
			st, ok := byName[srv]
			if !ok {
				left[srv] = "not in show stat"
			} else if why := bad(st); why != "" {
				left[srv] = why
			}
		}
		if len(left) == 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			return &GroupError{Backend: s.o.Backend, Servers: left, Err: sentinel}
		}
		t.Reset(s.o.PollInterval)
	}
}
