package rollout

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/batonhq/baton/internal/adminnet"
)

// The console is the operator's page of the admin API: embedded, with no
// build step and nothing fetched from elsewhere. The server renders a
// first view (readable without script) and console.js keeps it live by
// polling /api/status and /api/fleet, drawing the charts as inline SVG and
// sending commands as JSON. Every value reaches the page through
// html/template or textContent, and ConsoleCSP lets the page run only its
// own script.

//go:embed console.html console.js console.css
var consoleFiles embed.FS

// ConsoleCSP is the Content-Security-Policy of the console's pages: its
// own script and style only, requests to itself only, no inline script,
// no inline handler, no frame, no form posted elsewhere.
const ConsoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// FleetTimeout bounds one FleetView.Hosts call of GET /api/fleet.
const FleetTimeout = 5 * time.Second

// FleetStatus is the JSON of GET /api/fleet. The zero value lists no host.
type FleetStatus struct {
	Hosts []Host `json:"hosts"`
	// Error says why the hosts could not be listed (the last known are
	// not kept here); empty when they were.
	Error string    `json:"error,omitempty"`
	Now   time.Time `json:"now"`
}

var consoleTemplate = template.Must(template.New("console.html").Funcs(template.FuncMap{
	"dur": func(s float64) string {
		return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
	},
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("15:04:05.000")
	},
	"phase":  phaseName,
	"recent": recentDecisions,
}).ParseFS(consoleFiles, "console.html"))

// firstPaintDecisions bounds the decisions the server renders into a
// page (the newest), so that a long rollout's page stays small; the
// script lists them all once it runs.
const firstPaintDecisions = 50

type stepDecision struct {
	Step string
	Decision
}

// recentDecisions returns the newest decisions of v, rollout's and
// steps', newest first, at most firstPaintDecisions.
func recentDecisions(v *StatusView) []stepDecision {
	var out []stepDecision
	for _, d := range v.Decisions {
		out = append(out, stepDecision{"", d})
	}
	for _, s := range v.Steps {
		for _, d := range s.Decisions {
			out = append(out, stepDecision{s.Name, d})
		}
	}
	slices.SortStableFunc(out, func(a, b stepDecision) int { return b.At.Compare(a.At) })
	return out[:min(len(out), firstPaintDecisions)]
}

type consolePage struct {
	Page  string // "rollout", "fleet" or "releases"
	Title string
	V     *StatusView // nil when no rollout is served
	Fleet FleetStatus
	Error string // why the rollout could not be read
	// Release is the release a "rollout" page shows when it is not the
	// one served now (the page is then static).
	Release  string
	Releases []ReleaseSummary
}

func (h *adminHandler) console(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) { h.page(w, req, "rollout") })
	mux.HandleFunc("GET /fleet", func(w http.ResponseWriter, req *http.Request) { h.page(w, req, "fleet") })
	mux.HandleFunc("GET /releases", func(w http.ResponseWriter, req *http.Request) { h.page(w, req, "releases") })
	mux.HandleFunc("GET /releases/{id}", h.releasePage)
	// The console has no icon; a browser asks for one anyway.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, req *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /api/fleet", func(w http.ResponseWriter, req *http.Request) {
		adminnet.WriteJSON(w, http.StatusOK, h.hosts(req.Context()))
	})
	for _, f := range []struct{ name, ctype string }{{"console.js", "text/javascript; charset=utf-8"}, {"console.css", "text/css; charset=utf-8"}} {
		data, err := consoleFiles.ReadFile(f.name)
		if err != nil {
			panic(err) // embedded above: cannot happen
		}
		mux.HandleFunc("GET /console/"+f.name, func(w http.ResponseWriter, req *http.Request) {
			securityHeaders(w)
			w.Header().Set("Content-Type", f.ctype)
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			_, _ = w.Write(data)
		})
	}
}

func securityHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", ConsoleCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

func (h *adminHandler) page(w http.ResponseWriter, req *http.Request, which string) {
	p := consolePage{Page: which, Title: "rollout"}
	switch v, _, _, err := h.src.view(req.Context()); {
	case err == nil:
		p.V, p.Title = &v, "rollout "+v.ID
	case !errors.Is(err, ErrNoRollout):
		p.Error = "reading the rollout: " + err.Error()
	}
	switch which {
	case "fleet":
		p.Title = "fleet · " + p.Title
		p.Fleet = h.hosts(req.Context())
	case "releases":
		p.Title = "releases"
		rs, err := h.src.releases(req.Context())
		if err != nil {
			p.Error = "listing the releases: " + err.Error()
		}
		p.Releases = rs
	}
	h.render(w, p)
}

// releasePage is the rollout page of one release: the live page for the
// rollout served now, else a static one of its stored state.
func (h *adminHandler) releasePage(w http.ResponseWriter, req *http.Request) {
	v, ok := h.storedRelease(w, req)
	if !ok {
		return
	}
	if cur, _, _, err := h.src.view(req.Context()); err == nil && cur.ID == v.ID {
		http.Redirect(w, req, "/", http.StatusFound)
		return
	}
	h.render(w, consolePage{Page: "rollout", Title: "release " + v.ID, V: &v, Release: v.ID})
}

func (h *adminHandler) render(w http.ResponseWriter, p consolePage) {
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := consoleTemplate.Execute(w, p); err != nil {
		h.log.Warn("rollout console page", "err", err)
	}
}

// hosts lists the fleet, or this process alone.
func (h *adminHandler) hosts(ctx context.Context) FleetStatus {
	if h.fleet != nil {
		ctx, cancel := context.WithTimeout(ctx, FleetTimeout)
		defer cancel()
		hosts, err := h.fleet.Hosts(ctx)
		fs := FleetStatus{Hosts: hosts, Now: time.Now()}
		if err != nil {
			fs.Error = "listing the fleet's hosts: " + err.Error()
		}
		return fs
	}
	name, _ := os.Hostname()
	self := Host{Name: fmt.Sprintf("%s (pid %d)", name, os.Getpid()), State: "no rollout", Self: true, SeenAt: time.Now()}
	if v, _, _, err := h.src.view(ctx); err == nil {
		self.Version, self.Weight, self.SeenAt = v.Version, v.Weight, v.Now
		self.State = "rollout " + v.ID + " " + phaseName(v.Phase)
		if v.Paused {
			self.State += " (paused)"
		}
	}
	return FleetStatus{Hosts: []Host{self}, Now: self.SeenAt}
}
