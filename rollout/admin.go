package rollout

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/internal/adminnet"
)

// HandlerOptions configure NewHandler and Driver.Handler. The zero value
// logs nothing and answers only loopback Hosts and Unix sockets.
type HandlerOptions struct {
	// Logger receives one event per refused or failed request. Nil
	// discards.
	Logger *slog.Logger
	// AllowedHosts lists further Host header values (without port,
	// compared case-insensitively) the API answers, for a proxy or a name
	// in front of it; "*" accepts any. Nil accepts only an empty Host,
	// "localhost" and loopback addresses (a request on a Unix socket is
	// accepted whatever its Host): a web page whose name is rebound to
	// 127.0.0.1 still sends its own name.
	AllowedHosts []string
	// Fleet lists the hosts the console's fleet page shows. Nil shows
	// this process alone.
	Fleet FleetView
}

// Limits of the admin API: every request is bounded in size and time.
const (
	// MaxCommandBody is the largest command body the admin API reads.
	MaxCommandBody = 4 << 10
	// MaxWait is the longest GET /api/status?wait= holds a request.
	MaxWait = 25 * time.Second
	// DefaultWait is how long it holds one with no timeout= given.
	DefaultWait = 20 * time.Second
)

// NewHandler returns the admin API of r:
//
//	GET  /                    the console: the rollout's page (see Console)
//	GET  /fleet               the console's fleet page
//	GET  /api/fleet           JSON FleetStatus: the hosts
//	GET  /releases            the console's list of releases
//	GET  /releases/{id}       the console's page of one release
//	GET  /api/releases        JSON []ReleaseSummary, newest first
//	GET  /api/releases/{id}   JSON StatusView of one release
//	GET  /api/status          JSON StatusView: every step with timings and decisions
//	GET  /api/status?wait=N   the same, once the state's revision is past N
//	                          (or after timeout=, at most MaxWait): watch with it
//	POST /api/promote         end the current wait
//	POST /api/promote-full    skip remaining pauses and analyses
//	POST /api/abort           {"reason": "..."}: roll back
//	POST /api/pause | /api/resume | /api/retry
//
// Driver.Handler serves the same API for the rollout a Driver runs, plus
// POST /api/start, which takes a release manifest.
//
// It has no authentication: serve it on a Unix socket (ListenUnix,
// ListenAdmin) or loopback (ListenLoopback) only. It refuses what a web
// page in a browser on the same machine could make it do: a Host that is
// not loopback (DNS rebinding) or not in AllowedHosts, an Origin other
// than its own, and a POST without Content-Type: application/json, which
// a cross-site form cannot send without a preflight (403, 403, 415).
// Commands are serialized with each other and with the runner. A refused
// command answers 409 with the reason; a state the store could not save
// 503 (nothing changed); bad input 400, 404, 405, 413 or 415 with the
// reason. Every error is {"error": "..."}.
func NewHandler(r *Rollout, o HandlerOptions) http.Handler {
	return newHandler(fixed{r}, o)
}

// source is what an admin handler serves: one rollout, the current one
// of a Driver (which can also start one), or a Remote.
type source interface {
	// view returns the view of the rollout served now, a channel closed
	// at its next change and one closed when another rollout replaces
	// it (either may be nil); ErrNoRollout when there is none.
	view(ctx context.Context) (v StatusView, changed, switched <-chan struct{}, err error)
	// command applies an operator command to the rollout served now.
	command(ctx context.Context, cmd, reason string) error
	// start starts a release; nil error only once it is stored.
	start(ctx context.Context, rel *Release) error
	// releases lists the releases it can show, newest first.
	releases(ctx context.Context) ([]ReleaseSummary, error)
	// release returns the view of release id (errNoRelease when it has
	// none by that id): the live one for the rollout served now.
	release(ctx context.Context, id string) (StatusView, error)
}

// ErrNoRollout: the admin API has no rollout to serve (none started, or
// none published by the process that runs it).
var ErrNoRollout = errors.New("rollout: no rollout to serve")

type fixed struct{ r *Rollout }

func (f fixed) view(context.Context) (StatusView, <-chan struct{}, <-chan struct{}, error) {
	ch := f.r.Changed()
	return view(f.r), ch, nil, nil
}

func (f fixed) command(ctx context.Context, cmd, reason string) error {
	return f.r.Command(ctx, cmd, reason)
}

func (f fixed) start(context.Context, *Release) error {
	return &CommandError{Command: CmdStart, Reason: "this admin API serves one rollout; starting a release needs a rollout.Driver (Driver.Handler)"}
}

// Remote is a rollout run by another process, as NewRemoteHandler serves
// it: rollout/fleet's Member.Console is the fleet driver's rollout, seen
// from any member.
type Remote interface {
	// View returns the rollout's view as its runner last published it
	// (ErrNoRollout when none was), and a channel closed when a newer
	// one may be available. Now, DurationSeconds and WaitLeftSeconds are
	// the handler's to compute; the handler recomputes them.
	View(ctx context.Context) (StatusView, <-chan struct{}, error)
	// Command sends an operator command (CmdPause, CmdAbort, ...) to the
	// runner and waits for its answer until ctx ends: nil once applied,
	// a *CommandError with the runner's reason when refused.
	Command(ctx context.Context, command, reason string) error
}

// NewRemoteHandler returns the admin API and console of NewHandler for a
// rollout that runs elsewhere: GET /api/status answers r's view (its
// ?wait= returns at r's next change), each command is sent with
// r.Command and answered with the view read after it, and the pages are
// the same. POST /api/start is refused. The same guard applies (loopback
// or Unix socket, Host, Origin and Content-Type checks).
func NewRemoteHandler(r Remote, o HandlerOptions) http.Handler {
	return newHandler(remote{r}, o)
}

type remote struct{ r Remote }

func (rs remote) view(ctx context.Context) (StatusView, <-chan struct{}, <-chan struct{}, error) {
	v, ch, err := rs.r.View(ctx)
	if err != nil {
		return StatusView{}, ch, nil, err
	}
	// The runner's times are as of its publication: count them again.
	v.Now = time.Now()
	for i := range v.Steps {
		s := &v.Steps[i]
		s.DurationSeconds = s.Duration(v.Now).Seconds()
		if !s.WaitEndsAt.IsZero() {
			s.WaitLeftSeconds = max(0, s.WaitEndsAt.Sub(v.Now).Seconds())
		}
	}
	return v, ch, nil, nil
}

func (rs remote) command(ctx context.Context, cmd, reason string) error {
	return rs.r.Command(ctx, cmd, reason)
}

func (rs remote) start(context.Context, *Release) error {
	return &CommandError{Command: CmdStart, Reason: "this admin API serves a rollout that runs in another process; starting a release needs a rollout.Driver (Driver.Handler)"}
}

// CmdStart is the admin API's name of Driver.Start.
const CmdStart = "start"

func newHandler(src source, o HandlerOptions) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &adminHandler{src: src, log: log, fleet: o.Fleet}
	mux := http.NewServeMux()
	h.console(mux)
	h.releasesAPI(mux)
	mux.HandleFunc("GET /api/status", h.status)
	mux.HandleFunc("POST /api/start", h.start)
	mux.HandleFunc("POST /api/{cmd}", h.command)
	mux.HandleFunc("/api/{cmd}", func(w http.ResponseWriter, req *http.Request) {
		if req.PathValue("cmd") == "status" {
			w.Header().Set("Allow", "GET, HEAD")
			h.fail(w, req, http.StatusMethodNotAllowed, "status is read with GET")
			return
		}
		if !slices.Contains(commandNames, req.PathValue("cmd")) && req.PathValue("cmd") != CmdStart {
			h.notFound(w, req)
			return
		}
		w.Header().Set("Allow", "POST")
		h.fail(w, req, http.StatusMethodNotAllowed, "commands are sent with POST")
	})
	mux.HandleFunc("/", h.notFound)
	return guard(mux, o)
}

// guard fronts an admin handler with adminnet's guard.
func guard(h http.Handler, o HandlerOptions) http.Handler {
	return adminnet.Guard(h, adminnet.GuardOptions{
		AllowedHosts: o.AllowedHosts, Option: "HandlerOptions.AllowedHosts",
		BodyTypes: []string{"application/json", "application/yaml"},
	})
}

// Guard wraps h, a handler that fronts the admin API (a proxy of it, an
// extra page), in the guard NewHandler uses: a Host that is not loopback,
// a Unix socket's or in o.AllowedHosts is refused, so is an Origin other
// than the request's own Host, and a POST whose body is not JSON or YAML.
// Only o.AllowedHosts is used.
func Guard(h http.Handler, o HandlerOptions) http.Handler { return guard(h, o) }

func (h *adminHandler) notFound(w http.ResponseWriter, req *http.Request) {
	h.fail(w, req, http.StatusNotFound, fmt.Sprintf("no such endpoint %s %s; see GET /api/status and POST /api/{%s}", req.Method, req.URL.Path, strings.Join(append(commandNames, CmdStart), ",")))
}

var commandNames = []string{CmdPromote, CmdPromoteFull, CmdAbort, CmdPause, CmdResume, CmdRetry}

type adminHandler struct {
	src   source
	log   *slog.Logger
	fleet FleetView
}

// current returns the view served now, or answers (404 when there is
// no rollout, 503 when it cannot be read).
func (h *adminHandler) current(w http.ResponseWriter, req *http.Request) (StatusView, <-chan struct{}, <-chan struct{}, bool) {
	v, changed, switched, err := h.src.view(req.Context())
	switch {
	case err == nil:
		return v, changed, switched, true
	case errors.Is(err, ErrNoRollout):
		h.fail(w, req, http.StatusNotFound, "no rollout has been started here: POST /api/start with a release manifest")
	default:
		h.fail(w, req, http.StatusServiceUnavailable, "reading the rollout: "+err.Error())
	}
	return StatusView{}, changed, switched, false
}

func (h *adminHandler) status(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	if q.Get("wait") == "" {
		if v, _, _, ok := h.current(w, req); ok {
			adminnet.WriteJSON(w, http.StatusOK, v)
		}
		return
	}
	after, err := strconv.ParseInt(q.Get("wait"), 10, 64)
	if err != nil || after < 0 {
		h.fail(w, req, http.StatusBadRequest, fmt.Sprintf("wait=%q: want the revision last seen (a number)", q.Get("wait")))
		return
	}
	timeout := DefaultWait
	if t := q.Get("timeout"); t != "" {
		if timeout, err = time.ParseDuration(t); err != nil || timeout <= 0 || timeout > MaxWait {
			h.fail(w, req, http.StatusBadRequest, fmt.Sprintf("timeout=%q: want a duration in (0, %s]", t, MaxWait))
			return
		}
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		v, changed, switched, err := h.src.view(req.Context())
		if err == nil && v.Revision != after {
			adminnet.WriteJSON(w, http.StatusOK, v)
			return
		}
		if err != nil && !errors.Is(err, ErrNoRollout) {
			h.current(w, req) // answers the error
			return
		}
		select {
		case <-changed:
			continue
		case <-switched:
			continue
		case <-deadline.C:
		case <-req.Context().Done():
			return
		}
		if v, _, _, ok := h.current(w, req); ok {
			adminnet.WriteJSON(w, http.StatusOK, v)
		}
		return
	}
}

func (h *adminHandler) fail(w http.ResponseWriter, req *http.Request, code int, reason string) {
	h.log.Info("rollout admin request refused", "method", req.Method, "path", req.URL.Path, "status", code, "reason", reason)
	adminnet.WriteError(w, code, reason)
}

// CommandRequest is the optional JSON body of a command. The zero value
// (or no body) gives no reason.
type CommandRequest struct {
	Reason string `json:"reason,omitempty"`
}

// readBody reads a request body of at most limit bytes, or answers.
func (h *adminHandler) readBody(w http.ResponseWriter, req *http.Request, limit int) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(req.Body, int64(limit)+1))
	if err != nil {
		h.fail(w, req, http.StatusBadRequest, "reading the body: "+err.Error())
		return nil, false
	}
	if len(body) > limit {
		h.fail(w, req, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", limit))
		return nil, false
	}
	return body, true
}

func (h *adminHandler) command(w http.ResponseWriter, req *http.Request) {
	cmd := req.PathValue("cmd")
	if !slices.Contains(commandNames, cmd) {
		h.fail(w, req, http.StatusNotFound, fmt.Sprintf("unknown command %q; want one of %s", cmd, strings.Join(append(commandNames, CmdStart), ", ")))
		return
	}
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.fail(w, req, http.StatusUnsupportedMediaType, "commands need Content-Type: application/json")
		return
	}
	body, ok := h.readBody(w, req, MaxCommandBody)
	if !ok {
		return
	}
	var cr CommandRequest
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cr); err != nil {
			h.fail(w, req, http.StatusBadRequest, "body: "+err.Error()+` (want {"reason": "..."} or nothing)`)
			return
		}
		if dec.More() {
			h.fail(w, req, http.StatusBadRequest, "body: more than one JSON value")
			return
		}
	}
	if cr.Reason != "" && cmd != CmdAbort {
		h.fail(w, req, http.StatusBadRequest, fmt.Sprintf("%s takes no reason; only abort does", cmd))
		return
	}
	if len(cr.Reason) > 1024 {
		h.fail(w, req, http.StatusBadRequest, "reason longer than 1024 bytes")
		return
	}
	if _, _, _, ok := h.current(w, req); !ok {
		return
	}
	h.answer(w, req, h.src.command(req.Context(), cmd, cr.Reason))
}

// answer writes the outcome of a command.
func (h *adminHandler) answer(w http.ResponseWriter, req *http.Request, err error) {
	var ce *CommandError
	var re *ReleaseError
	var pe *PlanError
	switch {
	case err == nil:
		if v, _, _, ok := h.current(w, req); ok {
			adminnet.WriteJSON(w, http.StatusOK, v)
		}
	case errors.As(err, &ce):
		h.fail(w, req, http.StatusConflict, ce.Reason)
	case errors.As(err, &re), errors.As(err, &pe):
		h.fail(w, req, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrConflict):
		h.fail(w, req, http.StatusConflict, "this process no longer drives the rollout (another runner, e.g. the new process after a handoff, wrote its state): send the command to that process")
	case errors.Is(err, ErrNotSaved):
		h.fail(w, req, http.StatusServiceUnavailable, "nothing changed: "+err.Error())
	case errors.Is(err, context.Canceled):
		h.fail(w, req, http.StatusServiceUnavailable, "request cancelled")
	default:
		h.fail(w, req, http.StatusInternalServerError, err.Error())
	}
}

// start takes a release manifest (JSON or YAML, at most MaxReleaseSize),
// validates and binds it in this process, stores it and starts it.
func (h *adminHandler) start(w http.ResponseWriter, req *http.Request) {
	body, ok := h.readBody(w, req, MaxReleaseSize)
	if !ok {
		return
	}
	rel, err := ParseRelease(body, "")
	if err != nil {
		h.fail(w, req, http.StatusBadRequest, err.Error())
		return
	}
	if err := h.src.start(req.Context(), rel); err != nil {
		var ce *CommandError
		if errors.As(err, &ce) && strings.Contains(ce.Reason, "needs a rollout.Driver") {
			h.fail(w, req, http.StatusNotFound, ce.Reason)
			return
		}
		h.answer(w, req, err)
		return
	}
	h.answer(w, req, nil)
}
