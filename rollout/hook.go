package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// HookEvent tells a hook where it is called from; it is the JSON body a
// Webhook posts. The zero value is an empty event.
type HookEvent struct {
	Rollout  string            `json:"rollout"`
	Step     string            `json:"step"`
	Phase    string            `json:"phase"` // "run" or "rollback"
	Attempt  int               `json:"attempt"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// HookFunc is a hook (nil is invalid in a Hook step): a Go func, or an HTTP
// call built by Webhook. A non-nil error fails the step (or, for a confirm
// hook, means "not yet"). A hook interrupted by a crash is called again
// with a higher HookEvent.Attempt: it must be idempotent (a receiver can
// deduplicate on rollout, step and phase).
type HookFunc func(ctx context.Context, ev HookEvent) error

// Default of HookOptions.
const DefaultConfirmInterval = 10 * time.Second

// HookOptions configure a Hook step. The zero value runs the hook once;
// its failure fails the step; nothing is called on rollback.
type HookOptions struct {
	// Confirm makes the hook a gate (Flagger's confirm-promotion): it is
	// called every Interval until it returns nil; an operator's promote
	// also confirms.
	Confirm bool
	// Interval between confirm calls. Zero means DefaultConfirmInterval.
	Interval time.Duration
	// OnRollback is called when the step is rolled back (Flagger's
	// rollback notification); its error fails the rollback.
	OnRollback HookFunc
	// Metadata is passed in every HookEvent.
	Metadata map[string]string
}

// Hook is a step that calls fn (pre-rollout, post-rollout, confirm-
// promotion...).
func Hook(fn HookFunc, opts HookOptions) Step {
	if opts.Interval == 0 {
		opts.Interval = DefaultConfirmInterval
	}
	return Step{act: &hookAction{fn: fn, o: opts}}
}

type hookAction struct {
	fn HookFunc
	o  HookOptions
}

func (a *hookAction) kind() Kind         { return KindHook }
func (a *hookAction) irreversible() bool { return false }
func (a *hookAction) describe() string {
	if a.o.Confirm {
		return fmt.Sprintf("confirm hook, every %s", a.o.Interval)
	}
	return "hook"
}

func (a *hookAction) validate() error {
	if a.fn == nil {
		return errors.New("nil HookFunc")
	}
	if a.o.Interval < 0 {
		return errors.New("negative interval")
	}
	return nil
}

func (a *hookAction) event(x *stepCtx, phase string) HookEvent {
	s := x.state()
	return HookEvent{Rollout: x.r.plan.ID, Step: s.Name, Phase: phase, Attempt: s.Attempts, Metadata: a.o.Metadata}
}

func (a *hookAction) run(ctx context.Context, x *stepCtx) error {
	for {
		err := a.fn(ctx, a.event(x, "run"))
		if err == nil {
			return x.decide(ctx, "hook passed")
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if !a.o.Confirm {
			return fmt.Errorf("hook: %w", err)
		}
		if err := x.decide(ctx, "not confirmed yet: %v", err); err != nil {
			return err
		}
		promoted, werr := x.waitUntil(ctx, x.now().Add(a.o.Interval))
		if werr != nil {
			return werr
		}
		if promoted {
			return x.decide(ctx, "confirmed by operator promote")
		}
	}
}

func (a *hookAction) undo(ctx context.Context, x *stepCtx) error {
	if a.o.OnRollback == nil {
		return nil
	}
	if err := a.o.OnRollback(ctx, a.event(x, "rollback")); err != nil {
		return fmt.Errorf("rollback hook: %w", err)
	}
	return x.decide(ctx, "rollback hook called")
}

// Default of WebhookOptions.
const DefaultWebhookTimeout = 10 * time.Second

// WebhookOptions configure Webhook. The zero value uses a client with
// DefaultWebhookTimeout.
type WebhookOptions struct {
	// Client sends the request. Nil means an http.Client with Timeout.
	Client *http.Client
	// Timeout bounds each call. Zero means DefaultWebhookTimeout.
	Timeout time.Duration
}

// Webhook returns a HookFunc that POSTs the HookEvent as JSON to rawURL; a
// 2xx answer passes, anything else fails with the status and the start of
// the body. The URL must be http or https; the hook sends data and never
// runs anything it receives.
func Webhook(rawURL string, opts WebhookOptions) (HookFunc, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse quotes the whole URL in its error, user:password
		// included: report only why it did not parse.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("rollout: webhook URL is not valid: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("rollout: webhook URL %q: want http:// or https:// with a host", u.Redacted())
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultWebhookTimeout
	}
	client := opts.Client
	if client == nil {
		// A hook answers itself: a redirect elsewhere is refused rather
		// than followed to a host nobody configured.
		client = &http.Client{Timeout: opts.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	target := u.String()
	// Errors end up in the rollout's state, the admin API and its page:
	// they name the webhook without its password.
	shown := u.Redacted()
	return func(ctx context.Context, ev HookEvent) error {
		body, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			// *url.Error repeats the URL; keep only its cause.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return fmt.Errorf("webhook %s: %w", shown, err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("webhook %s answered %s: %s", shown, resp.Status, strings.TrimSpace(string(msg)))
		}
		return nil
	}, nil
}
