package graceful

import (
	"net/http"
	"path"
)

// State is a process's place in its lifecycle. The zero value is
// StateStarting.
type State int

// Lifecycle states.
const (
	// StateStarting: listeners may be open, Ready has not succeeded.
	StateStarting State = iota
	// StateReady: accepting connections.
	StateReady
	// StateUpgrading: accepting while a new process starts.
	StateUpgrading
	// StateBaking: handed off; listeners open but not accepting, ready to
	// resume if the new process fails inside the bake window.
	StateBaking
	// StateDraining: not accepting; finishing what is in flight.
	StateDraining
	// StateStopped: nothing left to serve.
	StateStopped
)

// String returns the state's lower-case name ("ready", "baking", ...) as
// the health handler reports it; an unknown value is "unknown".
func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateReady:
		return "ready"
	case StateUpgrading:
		return "upgrading"
	case StateBaking:
		return "baking"
	case StateDraining:
		return "draining"
	case StateStopped:
		return "stopped"
	}
	return "unknown"
}

// Health returns an http.Handler for probes. A path ending in "livez"
// answers 200 while the process runs (503 once stopped); any other path is
// the readiness probe: 200 only when the process accepts connections (ready
// or upgrading), 503 while starting, baking or draining. The body is the
// state's name. Serve it on loopback or a Unix socket.
func (u *Upgrader) Health() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := u.State()
		ok := st == StateReady || st == StateUpgrading
		if path.Base(r.URL.Path) == "livez" {
			ok = st != StateStopped
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte(st.String() + "\n"))
	})
}
