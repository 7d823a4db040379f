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
	"slices"
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

func (a *hookAction) kind() Kind { return KindHook }
func (a *hookAction) defaultName() string {
	if a.o.Confirm {
		return "confirm-hook"
	}
	return "hook"
}
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
// runs anything it receives. Webhook URLs often carry their credential in
// the path or the query (a chat service's incoming-webhook token) as well
// as in user:password: the errors, which end up in the rollout's state,
// the admin API and its page, name the webhook by scheme and host only
// and blank every part of the URL that may be secret wherever it appears,
// in the answer's body included.
func Webhook(rawURL string, opts WebhookOptions) (HookFunc, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse quotes the whole URL in its error: report only why
		// it did not parse.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("rollout: webhook URL is not valid: %s", newRedactor(nil).clean(err.Error(), rawURL))
	}
	red := newRedactor(u)
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("rollout: webhook URL %q: want http:// or https:// with a host", red.shown)
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
	return func(ctx context.Context, ev HookEvent) error {
		body, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return errors.New(red.clean(err.Error()))
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			// *url.Error repeats the URL; keep only its cause.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			if ctx.Err() != nil {
				return fmt.Errorf("webhook %s: %s: %w", red.shown, red.clean(err.Error()), ctx.Err())
			}
			return fmt.Errorf("webhook %s: %s", red.shown, red.clean(err.Error()))
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("webhook %s answered %s: %s", red.shown, resp.Status, red.clean(strings.TrimSpace(string(msg))))
		}
		return nil
	}, nil
}

// redacted replaces every secret part of a webhook URL in messages.
const redacted = "xxxxx"

// redactor knows the parts of a URL that may be secret: its password, its
// path segments, its query values (and keys), and the whole URL in its
// raw and escaped spellings. shown names the webhook by scheme and host.
type redactor struct {
	shown   string
	secrets []string
}

func newRedactor(u *url.URL) *redactor {
	r := &redactor{shown: "(invalid URL)"}
	if u == nil {
		return r
	}
	shown := &url.URL{Scheme: u.Scheme, Host: u.Host}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			shown.User = url.UserPassword(u.User.Username(), redacted)
		} else {
			shown.User = url.User(u.User.Username())
		}
	}
	r.shown = shown.String()
	if u.Path != "" && u.Path != "/" {
		r.shown += "/" + redacted
	}
	if u.RawQuery != "" {
		r.shown += "?" + redacted
	}
	r.shown = strings.Replace(r.shown, url.QueryEscape(redacted), redacted, -1)
	add := func(s string) {
		if len(s) >= minSecret {
			r.secrets = append(r.secrets, s, url.PathEscape(s), url.QueryEscape(s))
		}
	}
	add(u.String())
	add(u.RawQuery)
	if p, ok := u.User.Password(); ok {
		add(p)
	}
	for _, seg := range strings.Split(u.Path, "/") {
		add(seg)
	}
	for k, vs := range u.Query() {
		add(k)
		for _, v := range vs {
			add(v)
		}
	}
	// Longest first, so that a secret containing another is replaced
	// whole.
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return r
}

// minSecret is the shortest URL part treated as a secret: shorter ones
// (a path segment such as "hooks" or "v1") would blank ordinary words of
// a message; credentials are longer.
const minSecret = 8

// clean blanks the secrets, and the extra strings given, in msg.
func (r *redactor) clean(msg string, extra ...string) string {
	for _, s := range extra {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, redacted)
		}
	}
	for _, s := range r.secrets {
		msg = strings.ReplaceAll(msg, s, redacted)
	}
	return msg
}
