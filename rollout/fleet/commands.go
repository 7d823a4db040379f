package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/rollout"
)

// MaxReasonLen bounds the reason of an operator command.
const MaxReasonLen = 1024

// Command is an operator command on its way to the driver: written by any
// member at Layout.Commands(rollout) under the sender's lease, applied by
// the leading driver, and answered in place. The zero value is an empty
// request.
type Command struct {
	Command string    `json:"command"`
	Reason  string    `json:"reason,omitempty"`
	From    string    `json:"from"`
	At      time.Time `json:"at"`

	// The driver's answer.
	Done     bool   `json:"done,omitempty"`
	Accepted bool   `json:"accepted,omitempty"`
	Error    string `json:"error,omitempty"`
	By       string `json:"by,omitempty"`
	Term     int64  `json:"term,omitempty"`
	// Revision is the rollout state's revision once an accepted
	// command was applied (0 when unknown).
	Revision int64 `json:"revision,omitempty"`
}

func validCommand(c string) bool {
	switch c {
	case rollout.CmdPromote, rollout.CmdPromoteFull, rollout.CmdAbort, rollout.CmdPause, rollout.CmdResume, rollout.CmdRetry:
		return true
	}
	return false
}

// Command sends an operator command (rollout.CmdPause, CmdAbort, ...) for
// rollout id to the fleet's driver, wherever it runs, and waits for its
// answer until ctx ends. A refused command returns a *rollout.CommandError
// with the driver's reason, as the local Rollout's would. A command whose
// answer does not come before ctx ends may still be applied later: the
// driver applies each command once, even across a takeover.
func (m *Member) Command(ctx context.Context, id, command, reason string) error {
	_, err := m.command(ctx, id, command, reason)
	return err
}

// command is Command, returning the driver's answer.
func (m *Member) command(ctx context.Context, id, command, reason string) (Command, error) {
	if err := rollout.ValidID(id); err != nil {
		return Command{}, err
	}
	if !validCommand(command) {
		return Command{}, fmt.Errorf("fleet: unknown command %q (want promote, promote-full, abort, pause, resume or retry)", command)
	}
	if len(reason) > MaxReasonLen {
		return Command{}, fmt.Errorf("fleet: command reason of %d bytes (at most %d)", len(reason), MaxReasonLen)
	}
	lease, _ := m.Lease()
	if lease == nil {
		return Command{}, fmt.Errorf("fleet: member %s is not registered (engine unreachable?): the command was not sent", m.o.ID)
	}
	key := m.keys.Commands(id) + m.o.ID + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	b, _ := json.Marshal(Command{Command: command, Reason: strings.TrimSpace(reason), From: m.o.ID, At: time.Now()})
	rev, err := m.e.Commit(ctx, Txn{Ops: []Op{{Key: key, Value: b, Lease: lease.ID()}}})
	if err != nil {
		return Command{}, fmt.Errorf("fleet: sending %s for %s: %w", command, id, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.o.ProbeInterval)
		defer cancel()
		_, _ = m.e.Commit(dctx, Txn{Ops: []Op{{Key: key, Delete: true, Prev: Any}}})
	}()
	for r := range m.e.Watch(ctx, key, rev) {
		if r.Err != nil {
			return Command{}, fmt.Errorf("fleet: waiting for the answer to %s: %w", command, r.Err)
		}
		for _, ev := range r.Events {
			if ev.Doc.Key != key {
				continue
			}
			if ev.Type == Delete {
				return Command{}, fmt.Errorf("fleet: the command %s for %s was deleted before it was answered (the sender's lease expired?)", command, id)
			}
			var c Command
			if json.Unmarshal(ev.Doc.Value, &c) != nil || !c.Done {
				continue
			}
			if !c.Accepted {
				return c, &rollout.CommandError{Command: command, Reason: c.Error}
			}
			return c, nil
		}
	}
	return Command{}, fmt.Errorf("fleet: no answer from the driver to %s for %s: %w", command, id, ctx.Err())
}

// serveCommands applies the commands sent for rollout id to r, each once,
// until ctx ends: the pending ones first (in the order they were sent),
// then each new one as it arrives.
func (l *Lead) serveCommands(ctx context.Context, id string, r *rollout.Rollout) {
	m := l.d.m
	prefix := m.keys.Commands(id)
	for ctx.Err() == nil {
		docs, rev, err := m.e.List(ctx, prefix)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Debug("fleet: listing commands", "rollout", id, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(m.o.ProbeInterval):
				}
			}
			continue
		}
		sort.Slice(docs, func(i, j int) bool { return docs[i].Created < docs[j].Created })
		for _, d := range docs {
			l.applyCommand(ctx, id, r, d)
		}
		for w := range m.e.Watch(ctx, prefix, rev) {
			if w.Err != nil {
				break
			}
			for _, ev := range w.Events {
				if ev.Type == Put {
					l.applyCommand(ctx, id, r, ev.Doc)
				}
			}
		}
	}
}

func (l *Lead) applyCommand(ctx context.Context, id string, r *rollout.Rollout, d Document) {
	m := l.d.m
	var c Command
	if err := json.Unmarshal(d.Value, &c); err != nil || c.Done {
		return
	}
	var err error
	switch applied, aerr := l.store.Applied(ctx, id, d.Key); {
	case aerr != nil:
		m.log.Warn("fleet: cannot tell whether a command was applied; leaving it for later", "rollout", id, "command", c.Command, "err", aerr)
		return
	case applied:
		// Applied by this or a former leader that died before answering.
	default:
		cctx, _ := withCommand(ctx, d.Key)
		err = r.Command(cctx, c.Command, c.Reason)
	}
	var ce *rollout.CommandError
	switch {
	case err == nil:
		c.Accepted, c.Revision = true, r.Status().Revision
	case errors.As(err, &ce):
		c.Error = ce.Reason
	case ctx.Err() != nil:
		return // lost the leadership: the next leader answers
	default:
		c.Error = err.Error()
	}
	c.Done, c.By, c.Term = true, m.o.ID, l.Term()
	b, _ := json.Marshal(c)
	actx, cancel := context.WithTimeout(ctx, m.o.LeaseTTL)
	defer cancel()
	// The sender may have given up (its record is gone): nothing to answer.
	if _, err := l.Commit(actx, Op{Key: d.Key, Value: b, Prev: d.Revision, Lease: d.Lease}); err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrLeaseLost) {
		m.log.Warn("fleet: answering a command", "rollout", id, "command", c.Command, "err", err)
	}
	m.log.Info("fleet: command", "rollout", id, "command", c.Command, "from", c.From, "accepted", c.Accepted, "reason", c.Error)
}
