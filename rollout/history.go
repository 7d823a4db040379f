package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/batonhq/baton/internal/adminnet"
)

// ReleaseSummary is one release in GET /api/releases and on the console's
// releases page. The zero value is an unnamed pending release.
type ReleaseSummary struct {
	ID         string    `json:"id"`
	Version    string    `json:"version,omitempty"`
	Phase      Phase     `json:"phase"`
	Active     bool      `json:"active,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Error says why the release's state could not be read.
	Error string `json:"error,omitempty"`
}

func summary(st Status, version string, active bool) ReleaseSummary {
	return ReleaseSummary{ID: st.ID, Version: version, Phase: st.Phase, Active: active, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt}
}

// errNoRelease: the admin API knows no release of that id.
var errNoRelease = errors.New("no such release")

// one is the history of a source that serves one rollout: that one.
func one(ctx context.Context, src source) ([]ReleaseSummary, error) {
	v, _, _, err := src.view(ctx)
	switch {
	case errors.Is(err, ErrNoRollout):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return []ReleaseSummary{summary(v.Status, v.Version, true)}, nil
}

func oneRelease(ctx context.Context, src source, id string) (StatusView, error) {
	v, _, _, err := src.view(ctx)
	switch {
	case errors.Is(err, ErrNoRollout):
		return StatusView{}, errNoRelease
	case err != nil:
		return StatusView{}, err
	case v.ID != id:
		return StatusView{}, errNoRelease
	}
	return v, nil
}

func (f fixed) releases(ctx context.Context) ([]ReleaseSummary, error) { return one(ctx, f) }
func (f fixed) release(ctx context.Context, id string) (StatusView, error) {
	return oneRelease(ctx, f, id)
}
func (rs remote) releases(ctx context.Context) ([]ReleaseSummary, error) { return one(ctx, rs) }
func (rs remote) release(ctx context.Context, id string) (StatusView, error) {
	return oneRelease(ctx, rs, id)
}

// releases lists the index's releases, newest first, each with the phase
// its stored state has (the active one's from memory).
func (d *Driver) releases(ctx context.Context) ([]ReleaseSummary, error) {
	idx, _, err := d.index(ctx)
	if err != nil {
		return nil, err
	}
	cur, _ := d.current()
	out := make([]ReleaseSummary, 0, len(idx.Releases))
	for _, e := range slices.Backward(idx.Releases) {
		if cur != nil {
			if st := cur.Status(); st.ID == e.ID {
				out = append(out, summary(st, e.Version, true))
				continue
			}
		}
		st, _, err := d.storedStatus(ctx, e.ID)
		s := summary(st, e.Version, e.ID == idx.Active)
		s.ID = e.ID
		if err != nil {
			s.Error = err.Error()
		}
		out = append(out, s)
	}
	return out, nil
}

// release returns the view of an indexed release: the live one for the
// rollout served now, else its stored state, with every command refused.
func (d *Driver) release(ctx context.Context, id string) (StatusView, error) {
	if cur, _ := d.current(); cur != nil && cur.Status().ID == id {
		return view(cur), nil
	}
	idx, _, err := d.index(ctx)
	if err != nil {
		return StatusView{}, err
	}
	if !slices.ContainsFunc(idx.Releases, func(e indexEntry) bool { return e.ID == id }) {
		return StatusView{}, errNoRelease
	}
	st, rev, err := d.storedStatus(ctx, id)
	if err != nil {
		return StatusView{}, err
	}
	now := time.Now()
	if d.o.Clock != nil {
		now = d.o.Clock.Now()
	}
	v := StatusView{Status: st, Revision: rev, Now: now, Refusals: map[string]string{}}
	for _, s := range st.Steps {
		v.Steps = append(v.Steps, StepView{StepState: s, DurationSeconds: s.Duration(now).Seconds()})
	}
	if st.Release != nil {
		v.Version = st.Release.Version
	}
	active := idx.Active
	for _, c := range commandNames {
		v.Refusals[c] = fmt.Sprintf("release %q is not the one served here (%q is): commands apply to that one", id, active)
	}
	return v, nil
}

// storedStatus reads a release's stored state for display: decoded as
// written, without the plan (which this process may not be able to bind).
func (d *Driver) storedStatus(ctx context.Context, id string) (Status, int64, error) {
	data, rev, err := d.o.Store.Load(ctx, id)
	if err != nil {
		return Status{}, 0, fmt.Errorf("rollout: loading release %q: %w", id, err)
	}
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		return Status{}, 0, &StateError{ID: id, Reason: err.Error()}
	}
	st.Revision = rev
	return st, rev, nil
}

// releasesAPI serves GET /api/releases and GET /api/releases/{id}.
func (h *adminHandler) releasesAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/releases", func(w http.ResponseWriter, req *http.Request) {
		rs, err := h.src.releases(req.Context())
		if err != nil {
			h.fail(w, req, http.StatusServiceUnavailable, "listing the releases: "+err.Error())
			return
		}
		adminnet.WriteJSON(w, http.StatusOK, rs)
	})
	mux.HandleFunc("GET /api/releases/{id}", func(w http.ResponseWriter, req *http.Request) {
		if v, ok := h.storedRelease(w, req); ok {
			adminnet.WriteJSON(w, http.StatusOK, v)
		}
	})
}

// storedRelease returns the view of the release the path names, or
// answers (400 for an invalid id, 404 for an unknown one).
func (h *adminHandler) storedRelease(w http.ResponseWriter, req *http.Request) (StatusView, bool) {
	id := req.PathValue("id")
	if err := ValidID(id); err != nil {
		h.fail(w, req, http.StatusBadRequest, err.Error())
		return StatusView{}, false
	}
	v, err := h.src.release(req.Context(), id)
	switch {
	case errors.Is(err, errNoRelease):
		h.fail(w, req, http.StatusNotFound, fmt.Sprintf("no release %q here: GET /api/releases lists them", id))
		return StatusView{}, false
	case err != nil:
		h.fail(w, req, http.StatusServiceUnavailable, "reading release "+id+": "+err.Error())
		return StatusView{}, false
	}
	return v, true
}
