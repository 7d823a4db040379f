package canary

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/internal/bucket"
	"go.opentelemetry.io/otel/metric"
)

// DefaultSalt is prefixed to every key before hashing, so that the canary's
// split is independent of flag rollouts that bucket the same users.
const DefaultSalt = "canary"

// Options configures New. Stable and Canary are required; every other zero
// field means the documented default.
type Options struct {
	// Stable serves the requests that do not go to the canary: a handler
	// in this binary or an *Upstream.
	Stable http.Handler
	// Canary serves the canary's share: a handler or an *Upstream.
	Canary http.Handler
	// Weight is the initial canary weight in basis points (0..10,000);
	// zero sends no keyed or random traffic to the canary.
	Weight uint32
	// Salt is hashed before each key; empty means DefaultSalt. Use the
	// flag's key to make the canary follow a flag's percentage rollout
	// user for user.
	Salt string
	// Key says where sticky keys come from; the zero value has none.
	Key KeyOptions
	// Segments are tried in order after the override; a match sends the
	// request to the canary whatever the weight (not while halted).
	Segments []Segment
	// Override configures the header that forces a variant; the zero
	// value enables X-Canary with no secret.
	Override Override
	// Mirror, when set, copies stable traffic to the canary and discards
	// the canary's answers (dark launch).
	Mirror *MirrorOptions
	// Window and Resolution shape the sliding window of the metrics; zero
	// means DefaultWindow and DefaultResolution.
	Window, Resolution time.Duration
	// TailQuantile sets the tail cut of the latency tail test (see
	// MetricsOptions.TailQuantile); zero means DefaultTailQuantile.
	TailQuantile float64
	// Classify says which completed requests count as errors; nil means
	// HTTPErrors (5xx). Use GRPCErrors in front of gRPC.
	Classify Classifier
	// Clock times requests; nil means the system clock.
	Clock Clock
	// MeterProvider receives the per-variant metrics; nil means none.
	MeterProvider metric.MeterProvider
	// Logger receives recovered panics and mirror problems; nil discards.
	Logger *slog.Logger
}

// Splitter is an http.Handler that sends each request to the stable or the
// canary handler and records the outcome per variant. The weight can change
// at any time (SetWeight) and the next request sees it. Use New; the zero
// value is not usable.
//
// Order of precedence for a request:
//  1. the override header, if enabled (and the secret matches);
//  2. halted (after Halt): stable;
//  3. segments, in order: the first match goes to the canary;
//  4. the sticky key: canary iff bucket(salt+key) out of 10,000 < weight;
//  5. no key: a random draw against the weight (after assigning a key
//     cookie, if AssignCookie is set, which makes the draw sticky).
type Splitter struct {
	stable, canary http.Handler
	salt           string
	keyFunc        func(*http.Request) string
	keyHeader      string
	keyCookie      string
	assignCookie   string
	assignMaxAge   int
	segments       []Segment
	override       *overrideRule
	clock          Clock
	log            *slog.Logger
	metrics        *Metrics
	mirror         *mirror
	mirrorHeader   string // stripped from incoming requests
	otel           *otelExport
	classify       Classifier

	wmu    sync.Mutex // orders weight changes with their note in the metrics
	weight atomic.Uint32
	halted atomic.Bool

	closeOnce sync.Once
}

// New returns a splitter at opts.Weight.
func New(opts Options) (*Splitter, error) {
	if opts.Stable == nil {
		return nil, optErr("Stable", "a stable handler is required")
	}
	if opts.Canary == nil {
		return nil, optErr("Canary", "a canary handler is required")
	}
	if opts.Weight > MaxWeight {
		return nil, optErr("Weight", "%d basis points is above %d (100%%)", opts.Weight, MaxWeight)
	}
	if opts.TailQuantile < 0 || opts.TailQuantile >= 1 {
		return nil, optErr("TailQuantile", "must be in (0, 1), got %v", opts.TailQuantile)
	}
	for i, sg := range opts.Segments {
		if sg.Match == nil {
			return nil, optErr("Segments["+strconv.Itoa(i)+"].Match", "segment %q has no Match function", sg.Name)
		}
	}
	s := &Splitter{
		stable:       opts.Stable,
		canary:       opts.Canary,
		salt:         opts.Salt,
		keyFunc:      opts.Key.Func,
		keyHeader:    http.CanonicalHeaderKey(opts.Key.Header),
		keyCookie:    opts.Key.Cookie,
		assignCookie: opts.Key.AssignCookie,
		assignMaxAge: opts.Key.AssignMaxAge,
		segments:     opts.Segments,
		override:     newOverrideRule(opts.Override),
		clock:        clockOr(opts.Clock),
		log:          opts.Logger,
		mirrorHeader: DefaultMirrorHeader,
		classify:     opts.Classify,
	}
	if s.classify == nil {
		s.classify = HTTPErrors
	}
	if s.salt == "" {
		s.salt = DefaultSalt
	}
	if s.assignMaxAge == 0 {
		s.assignMaxAge = DefaultAssignMaxAge
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.metrics = NewMetrics(MetricsOptions{Window: opts.Window, Resolution: opts.Resolution,
		TailQuantile: opts.TailQuantile, Weight: opts.Weight, Clock: s.clock})
	if opts.Mirror != nil {
		m, err := newMirror(*opts.Mirror, s)
		if err != nil {
			return nil, err
		}
		s.mirror = m
		s.mirrorHeader = m.header
	}
	if opts.MeterProvider != nil {
		o, err := newOtelExport(opts.MeterProvider, s)
		if err != nil {
			return nil, err
		}
		s.otel = o
	}
	s.weight.Store(opts.Weight)
	return s, nil
}

// SetWeight sets the canary weight in basis points (0..10,000) and clears a
// halt; the next request routed sees it. Raising the weight moves keys only
// from stable to canary, lowering it only back. The metrics note the
// change, so that the analysis compares only what ran at the new weight.
func (s *Splitter) SetWeight(bp uint32) error {
	if bp > MaxWeight {
		return &weightError{bp}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.weight.Store(bp)
	s.halted.Store(false)
	s.metrics.noteWeight(s.clock.Now(), bp)
	return nil
}

type weightError struct{ bp uint32 }

func (e *weightError) Error() string {
	return "canary: weight " + strconv.FormatUint(uint64(e.bp), 10) + " basis points is above 10000 (100%)"
}
func (e *weightError) Unwrap() error { return ErrWeight }

// Weight returns the current canary weight in basis points.
func (s *Splitter) Weight() uint32 { return s.weight.Load() }

// Salt returns the salt hashed before each key (Options.Salt, or
// DefaultSalt): two splitters with the same salt and weight send every key
// to the same variant, on any host.
func (s *Splitter) Salt() string { return s.salt }

// Halt sends every request to stable, segments included, until the next
// SetWeight: what an abort does. Only an allowed override header still
// reaches the canary, so a person can reproduce the failure.
func (s *Splitter) Halt() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.halted.Store(true)
	s.weight.Store(0)
	s.metrics.noteWeight(s.clock.Now(), 0)
}

// Halted reports whether Halt is in force.
func (s *Splitter) Halted() bool { return s.halted.Load() }

// Metrics returns the per-variant metrics the splitter records.
func (s *Splitter) Metrics() *Metrics { return s.metrics }

// Route returns the variant a request would be sent to now, following the
// order of precedence documented on Splitter. A request without a key is
// drawn at random on every call.
func (s *Splitter) Route(r *http.Request) Variant {
	v, _, _, _ := s.route(r)
	return v
}

// Explain returns the variant for r and the rule that chose it.
func (s *Splitter) Explain(r *http.Request) (Variant, Reason) {
	v, why, _, _ := s.route(r)
	return v, why
}

// route decides; assign is a freshly generated key the caller must set as
// the assign cookie, and group the key group the request is recorded in
// (-1 for a request without a key, or routed before any key is read).
func (s *Splitter) route(r *http.Request) (v Variant, why Reason, assign string, group int) {
	if s.override != nil {
		if v, ok := s.override.match(r); ok {
			return v, ByOverride, "", -1
		}
	}
	if s.halted.Load() {
		return Stable, ByHalt, "", -1
	}
	w := s.weight.Load()
	if w == 0 && len(s.segments) == 0 {
		return Stable, ByWeight, "", -1
	}
	key := s.key(r)
	var h uint32
	group = -1
	if key != "" {
		h = bucket.Hash(s.salt, key)
		group = groupOf(h)
	}
	for i := range s.segments {
		if s.segments[i].Match(r, key) {
			return Canary, BySegment, "", group
		}
	}
	if key == "" && s.assignCookie != "" {
		key = strconv.FormatUint(rand.Uint64(), 36)
		assign = key
		h = bucket.Hash(s.salt, key)
		group = groupOf(h)
	}
	if key == "" {
		if rand.Uint32N(MaxWeight) < w {
			return Canary, ByRandom, "", -1
		}
		return Stable, ByRandom, "", -1
	}
	if bucket.In(h, w, MaxWeight) {
		return Canary, ByWeight, assign, group
	}
	return Stable, ByWeight, assign, group
}

func (s *Splitter) key(r *http.Request) string {
	if s.keyFunc != nil {
		if k := s.keyFunc(r); k != "" {
			return k
		}
	}
	if s.keyHeader != "" {
		if vals := r.Header[s.keyHeader]; len(vals) > 0 && vals[0] != "" {
			return vals[0]
		}
	}
	if s.keyCookie != "" {
		if c, err := r.Cookie(s.keyCookie); err == nil && c.Value != "" {
			return c.Value
		}
	}
	if s.assignCookie != "" {
		if c, err := r.Cookie(s.assignCookie); err == nil && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

// ServeHTTP routes the request, serves it, and records its outcome: a 5xx
// status or a panic counts as an error, except when the request's context
// was canceled (the client went away): such a failure is counted by
// Metrics.Canceled and left out of the requests, errors and latency the
// analysis compares. A panic other than http.ErrAbortHandler is always an
// error. A panic is recovered and answered
// with 500 if nothing was written yet; otherwise the response is aborted
// (http.ErrAbortHandler), so the client never mistakes a truncated answer
// for a complete one.
//
// The mirror header (MirrorOptions.Header, DefaultMirrorHeader without
// mirroring) is removed from every incoming request before routing, in
// every spelling that a CGI-style stack would read as the same header
// (case, and '_' for '-': X_Baton_Mirror): only the splitter's own copies
// carry it, so a client cannot make a real request look like a copy whose
// side effects the canary skips.
//
// Whether a request failed is the Classify option's decision (5xx by
// default).
func (s *Splitter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	stripHeader(r.Header, s.mirrorHeader)
	v, _, assign, group := s.route(r)
	if o := s.override; o != nil && o.secret != nil {
		// The override secret is a credential: targets, their logs and
		// upstream processes do not need to see it.
		if _, ok := r.Header[o.secretHeader]; ok {
			r.Header.Del(o.secretHeader)
		}
	}
	if assign != "" {
		http.SetCookie(w, &http.Cookie{
			Name: s.assignCookie, Value: assign, Path: "/", MaxAge: s.assignMaxAge,
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
		})
	}
	h := s.stable
	var cap *capture
	if v == Canary {
		h = s.canary
	} else if s.mirror != nil {
		cap = s.mirror.capture(r)
	}
	s.serve(h, &recorder{ResponseWriter: w}, r, v, group)
	if cap != nil {
		s.mirror.send(r, cap)
	}
}

func (s *Splitter) serve(h http.Handler, rec *recorder, r *http.Request, v Variant, group int) {
	start := s.clock.Now()
	defer func() {
		end := s.clock.Now()
		p := recover()
		failed := p != nil || s.classify(Response{Request: r, Status: rec.status, Header: rec.Header()})
		if failed && (p == nil || p == http.ErrAbortHandler) && errors.Is(r.Context().Err(), context.Canceled) {
			// The client went away (or the server closed the
			// connection): the 502 or aborted copy that follows says
			// nothing about the variant, and counting it would inflate
			// the error rate of whichever variant is slower (usually an
			// upstream canary) into a false rollback.
			s.metrics.RecordCanceled(v)
		} else {
			s.metrics.record(v, end, group, end.Sub(start), failed)
			s.otel.record(v, end.Sub(start))
		}
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			panic(p)
		}
		s.log.Error("canary: handler panicked", "variant", v.String(), "method", r.Method, "path", r.URL.Path, "panic", p)
		if rec.wrote {
			panic(http.ErrAbortHandler)
		}
		rec.WriteHeader(http.StatusInternalServerError)
	}()
	h.ServeHTTP(rec, r)
}

// Shutdown stops mirroring and waits for in-flight mirrored requests to
// finish, then releases what Close releases. If ctx ends first it cancels
// the copies' contexts and returns ctx.Err() at once; a later Close waits
// for them. It does not wait for routed requests: the http.Server owns
// those.
func (s *Splitter) Shutdown(ctx context.Context) error {
	if s.mirror != nil {
		if err := s.mirror.shutdown(ctx); err != nil {
			return err
		}
	}
	return s.Close()
}

// Close cancels in-flight mirrored requests, waits for them to return, and
// unregisters the exported metrics. Routing keeps working (mirroring
// stops). Close is idempotent and returns nil.
func (s *Splitter) Close() error {
	s.closeOnce.Do(func() {
		if s.mirror != nil {
			s.mirror.close()
		}
		if s.otel != nil {
			s.otel.close()
		}
	})
	return nil
}

// stripHeader removes every key of h that names the header name once case
// is ignored and '_' is read as '-', as CGI and many proxies read them.
func stripHeader(h http.Header, name string) {
	for k := range h {
		if sameHeaderName(k, name) {
			delete(h, k)
		}
	}
}

func sameHeaderName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		if foldHeaderByte(a[i]) != foldHeaderByte(b[i]) {
			return false
		}
	}
	return true
}

func foldHeaderByte(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + ('a' - 'A')
	}
	return c
}
