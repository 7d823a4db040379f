package flags

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/internal/adminnet"
)

// DefaultAdminMaxBody bounds admin request bodies when
// AdminOptions.MaxBody is zero.
const DefaultAdminMaxBody = 64 << 10

// AdminOptions configures NewAdminHandler. The zero AdminOptions uses the
// Store's logger and DefaultAdminMaxBody, and accepts only requests whose
// Host is loopback (or that arrive on a Unix socket).
type AdminOptions struct {
	// Logger receives one Info record per change made through the handler
	// (flag, action, values, remote address). Nil means the Store's logger.
	Logger *slog.Logger
	// MaxBody bounds request bodies. Zero means DefaultAdminMaxBody.
	MaxBody int64
	// AllowedHosts lists further Host header values (without port,
	// compared case-insensitively) the handler answers, for a proxy or a
	// name in front of it; "*" accepts any. Nil accepts only an empty
	// Host, "localhost" and loopback addresses, so that a web page in a
	// browser on the same machine cannot reach the handler through DNS
	// rebinding. Requests on a Unix socket are accepted whatever their Host.
	AllowedHosts []string
	// Overrides receives the handler's changes (disable, enable, percent,
	// clear). Nil means the Store itself: the changes are this host's
	// own. A fleet passes a writer that puts them in its document instead
	// (EditOverride), so that every host applies them; each change is
	// first checked against this host's flag (Store.CheckOverride), and
	// the answer shows the flag as this host serves it, which includes the
	// change once the fleet's document has come back.
	Overrides OverrideWriter
}

// OverrideWriter keeps run-time changes. *Store is one.
type OverrideWriter interface {
	// UpdateOverride calls edit with the current run-time change of flag
	// key (the zero Override if none) and keeps what edit leaves; an error
	// from edit changes nothing and is returned.
	UpdateOverride(ctx context.Context, key string, edit func(*Override) error) error
}

// NewAdminHandler returns an http.Handler to inspect and change flags at
// run time:
//
//	GET    /flags                 all flags: state and usage (JSON)
//	GET    /flags/{key}           one flag
//	GET    /stale?after=30d       stale flags (after: a Go duration or N"d"; default 30 days)
//	POST   /flags/{key}/disable   kill switch: serve the off variant
//	POST   /flags/{key}/enable    undo disable (an explicit "enabled" override)
//	PUT    /flags/{key}/percent   body {"variant":"on","percent":25}
//	DELETE /flags/{key}/override  drop run-time changes; the files rule again
//
// Changes survive reloads until the override is deleted, and are logged.
// Bad input is answered 400 (404 for an unknown flag) with a JSON body
// {"error": "..."} saying what was wrong. The handler has no
// authentication: serve it on a loopback address or on a Unix socket with
// 0600 permissions, never on a public listener.
//
// Two checks keep browsers out, since a page on any site can make the
// browser send requests to 127.0.0.1: every POST, PUT and DELETE must carry
// Content-Type: application/json (which a cross-site form cannot send
// without a CORS preflight the handler never grants), else 415; and the
// Host header must be loopback or listed in AdminOptions.AllowedHosts (a
// DNS-rebound name is not), else 403; a request whose Origin is another
// site's is refused with 403 too. The answers say why.
func NewAdminHandler(s *Store, opts AdminOptions) http.Handler {
	a := &admin{s: s, log: opts.Logger, max: opts.MaxBody, w: opts.Overrides}
	if a.w == nil {
		a.w = s
	}
	if a.log == nil {
		a.log = s.log
	}
	if a.max <= 0 {
		a.max = DefaultAdminMaxBody
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /flags", a.list)
	mux.HandleFunc("GET /flags/{key}", a.get)
	mux.HandleFunc("GET /stale", a.stale)
	mux.HandleFunc("POST /flags/{key}/disable", a.disable(true))
	mux.HandleFunc("POST /flags/{key}/enable", a.disable(false))
	mux.HandleFunc("PUT /flags/{key}/percent", a.percent)
	mux.HandleFunc("DELETE /flags/{key}/override", a.clear)
	// The guard refuses what a browser could have been tricked into
	// sending (shared with the other admin APIs of baton).
	return adminnet.Guard(mux, adminnet.GuardOptions{AllowedHosts: opts.AllowedHosts, Option: "AdminOptions.AllowedHosts"})
}

type admin struct {
	s   *Store
	w   OverrideWriter
	log *slog.Logger
	max int64
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusBadRequest
	if errors.Is(err, ErrFlagNotFound) {
		code = http.StatusNotFound
	} else if errors.Is(err, ErrClosed) {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func (a *admin) list(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"version": a.s.Version(), "flags": a.s.Flags()})
}

func (a *admin) get(w http.ResponseWriter, r *http.Request) {
	st := a.s.Status(r.PathValue("key"))
	if st.Key == "" {
		writeErr(w, fmt.Errorf("%w: %q", ErrFlagNotFound, r.PathValue("key")))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *admin) stale(w http.ResponseWriter, r *http.Request) {
	var opts StaleOptions
	if v := r.URL.Query().Get("after"); v != "" {
		d, err := parseDays(v)
		if err != nil || d <= 0 {
			writeErr(w, fmt.Errorf("after=%q: want a positive duration such as 720h or 30d", v))
			return
		}
		opts.After = d
	}
	out := a.s.Stale(opts)
	if out == nil {
		out = []StaleFlag{}
	}
	writeJSON(w, http.StatusOK, out)
}

func parseDays(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days > 1<<20 {
			return 0, errors.New("bad day count")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

func (a *admin) changed(r *http.Request, key, action string, attrs ...any) {
	a.log.Info("flags: admin change", append([]any{"flag", key, "action", action, "remote", r.RemoteAddr}, attrs...)...)
}

// override changes flag key's run-time change through the writer, each
// step checked against the flag this host serves.
func (a *admin) override(r *http.Request, key string, change func(*Override)) error {
	if a.s.Status(key).Key == "" {
		return fmt.Errorf("%w: %q", ErrFlagNotFound, key)
	}
	return a.w.UpdateOverride(r.Context(), key, func(o *Override) error {
		change(o)
		if o.IsZero() {
			return nil
		}
		return a.s.CheckOverride(key, *o)
	})
}

func (a *admin) disable(off bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if err := a.override(r, key, func(o *Override) { o.Disabled = &off }); err != nil {
			writeErr(w, err)
			return
		}
		a.changed(r, key, map[bool]string{true: "disable", false: "enable"}[off])
		writeJSON(w, http.StatusOK, a.s.Status(key))
	}
}

func (a *admin) percent(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	var body struct {
		Variant string   `json:"variant"`
		Percent *float64 `json:"percent"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, a.max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeErr(w, fmt.Errorf("body: want {\"variant\": \"name\", \"percent\": 0-100}: %w", err))
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		writeErr(w, errors.New("body: trailing data after the JSON object"))
		return
	}
	if body.Variant == "" || body.Percent == nil {
		writeErr(w, errors.New("body: variant and percent are required"))
		return
	}
	if err := a.override(r, key, func(o *Override) { o.Percent = &Percent{Variant: body.Variant, Percent: *body.Percent} }); err != nil {
		writeErr(w, err)
		return
	}
	a.changed(r, key, "percent", "variant", body.Variant, "percent", *body.Percent)
	writeJSON(w, http.StatusOK, a.s.Status(key))
}

func (a *admin) clear(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if err := a.override(r, key, func(o *Override) { *o = Override{} }); err != nil {
		writeErr(w, err)
		return
	}
	a.changed(r, key, "clear override")
	writeJSON(w, http.StatusOK, a.s.Status(key))
}
