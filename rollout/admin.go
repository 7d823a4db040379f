package rollout

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
)

// HandlerOptions configure NewHandler. The zero value logs nothing.
type HandlerOptions struct {
	// Logger receives one event per refused or failed request. Nil
	// discards.
	Logger *slog.Logger
}

// MaxCommandBody is the largest request body the admin API reads.
const MaxCommandBody = 4 << 10

// NewHandler returns the admin API of r:
//
//	GET  /                   HTML status page
//	GET  /api/status         JSON status: every step with timings and decisions
//	POST /api/promote        end the current wait
//	POST /api/promote-full   skip remaining pauses and analyses
//	POST /api/abort          {"reason": "..."}: roll back
//	POST /api/pause | /api/resume | /api/retry
//
// POST requests must carry Content-Type: application/json (a browser
// cannot send that cross-origin without a preflight, which protects a
// loopback listener from other pages). Commands are serialized with each
// other and with the runner. A refused command answers 409 with the
// reason; bad input 400, 404, 405 or 415 with the reason. Serve it on a
// Unix socket (ListenUnix) or loopback (ListenLoopback) only: it has no
// authentication.
func NewHandler(r *Rollout, o HandlerOptions) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &adminHandler{r: r, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.page)
	mux.HandleFunc("GET /api/status", h.status)
	mux.HandleFunc("POST /api/{cmd}", h.command)
	mux.HandleFunc("/api/{cmd}", func(w http.ResponseWriter, req *http.Request) {
		if req.PathValue("cmd") == "status" {
			w.Header().Set("Allow", "GET, HEAD")
			h.fail(w, req, http.StatusMethodNotAllowed, "status is read with GET")
			return
		}
		if !slices.Contains(commandNames, req.PathValue("cmd")) {
			h.notFound(w, req)
			return
		}
		w.Header().Set("Allow", "POST")
		h.fail(w, req, http.StatusMethodNotAllowed, "commands are sent with POST")
	})
	mux.HandleFunc("/", h.notFound)
	return mux
}

func (h *adminHandler) notFound(w http.ResponseWriter, req *http.Request) {
	h.fail(w, req, http.StatusNotFound, fmt.Sprintf("no such endpoint %s %s; see GET /api/status and POST /api/{%s}", req.Method, req.URL.Path, strings.Join(commandNames, ",")))
}

var commandNames = []string{CmdPromote, CmdPromoteFull, CmdAbort, CmdPause, CmdResume, CmdRetry}

type adminHandler struct {
	r   *Rollout
	log *slog.Logger
}

// StatusView is the JSON of GET /api/status. Its zero value is an empty
// status.
type StatusView struct {
	Status
	Now   time.Time  `json:"now"`
	Steps []StepView `json:"steps"`
}

// StepView is one step in StatusView, with its duration computed. The
// zero value is an empty step.
type StepView struct {
	StepState
	DurationSeconds float64 `json:"durationSeconds"`
}

func (h *adminHandler) view() StatusView {
	st := h.r.Status()
	now := h.r.clock.Now()
	v := StatusView{Status: st, Now: now}
	for _, s := range st.Steps {
		v.Steps = append(v.Steps, StepView{StepState: s, DurationSeconds: s.Duration(now).Seconds()})
	}
	return v
}

func (h *adminHandler) status(w http.ResponseWriter, req *http.Request) {
	writeJSON(w, http.StatusOK, h.view())
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (h *adminHandler) fail(w http.ResponseWriter, req *http.Request, code int, reason string) {
	h.log.Info("rollout admin request refused", "method", req.Method, "path", req.URL.Path, "status", code, "reason", reason)
	writeJSON(w, code, errorBody{Error: reason})
}

// CommandRequest is the optional JSON body of a command. The zero value
// (or no body) gives no reason.
type CommandRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (h *adminHandler) command(w http.ResponseWriter, req *http.Request) {
	cmd := req.PathValue("cmd")
	known := false
	for _, c := range commandNames {
		known = known || c == cmd
	}
	if !known {
		h.fail(w, req, http.StatusNotFound, fmt.Sprintf("unknown command %q; want one of %s", cmd, strings.Join(commandNames, ", ")))
		return
	}
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.fail(w, req, http.StatusUnsupportedMediaType, "commands need Content-Type: application/json")
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxCommandBody+1))
	if err != nil {
		h.fail(w, req, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if len(body) > MaxCommandBody {
		h.fail(w, req, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", MaxCommandBody))
		return
	}
	var cr CommandRequest
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
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
	ctx := req.Context()
	switch cmd {
	case CmdPromote:
		err = h.r.Promote(ctx)
	case CmdPromoteFull:
		err = h.r.PromoteFull(ctx)
	case CmdAbort:
		err = h.r.Abort(ctx, cr.Reason)
	case CmdPause:
		err = h.r.Pause(ctx)
	case CmdResume:
		err = h.r.Resume(ctx)
	case CmdRetry:
		err = h.r.Retry(ctx)
	}
	var ce *CommandError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, h.view())
	case errors.As(err, &ce):
		h.fail(w, req, http.StatusConflict, ce.Reason)
	case errors.Is(err, ErrConflict):
		h.fail(w, req, http.StatusConflict, "this process no longer drives the rollout (another runner, e.g. the new process after a handoff, wrote its state): send the command to that process")
	case errors.Is(err, context.Canceled):
		h.fail(w, req, http.StatusServiceUnavailable, "request cancelled")
	default:
		h.fail(w, req, http.StatusInternalServerError, err.Error())
	}
}

//go:embed admin.html
var pageSource string

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"dur": func(s float64) string {
		return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
	},
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("15:04:05.000")
	},
}).Parse(pageSource))

func (h *adminHandler) page(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	if err := pageTemplate.Execute(w, h.view()); err != nil {
		h.log.Warn("rollout admin page", "err", err)
	}
}
