package canary

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// MirrorOptions configures traffic mirroring: a copy of stable requests is
// sent to the canary handler after the real response is complete, and the
// canary's answer is discarded. Zero fields mean the defaults.
//
// Mirroring never delays or fails the real request: the copy starts after
// the stable handler has returned, runs in its own goroutine under a
// bounded number of slots, and is dropped (and counted) when every slot is
// busy. Request bodies are captured as the stable handler reads them, up to
// MaxBody; a request with a larger or unknown-length body, or whose body the
// stable handler did not read to the end, is not mirrored.
type MirrorOptions struct {
	// Weight is the share of stable requests copied, in basis points;
	// zero means MaxWeight (all of them).
	Weight uint32
	// MaxConcurrent bounds the copies in flight; zero means
	// DefaultMirrorConcurrency.
	MaxConcurrent int
	// MaxBody is the largest request body copied; zero means
	// DefaultMirrorMaxBody, negative means requests with a body are never
	// copied.
	MaxBody int64
	// Timeout bounds each copy; zero means DefaultMirrorTimeout.
	Timeout time.Duration
	// Header is set to "1" on copies, so the canary can skip side effects
	// (payments, e-mails); empty means DefaultMirrorHeader.
	Header string
}

// Defaults for MirrorOptions.
const (
	DefaultMirrorConcurrency = 16
	DefaultMirrorMaxBody     = 64 << 10
	DefaultMirrorTimeout     = 10 * time.Second
	DefaultMirrorHeader      = "X-Baton-Mirror"
)

// MirrorStats counts what the mirror did since the splitter was created.
// The zero value means nothing was mirrored.
type MirrorStats struct {
	Sent    uint64 // copies sent to the canary
	Dropped uint64 // copies not sent because every slot was busy
	Skipped uint64 // requests not copied: body too large, of unknown length or not read to the end
}

type mirror struct {
	s       *Splitter
	weight  uint32
	maxBody int64
	timeout time.Duration
	header  string
	slots   chan struct{}
	wg      sync.WaitGroup
	ctx     context.Context // canceled by close
	cancel  context.CancelFunc
	mu      sync.Mutex // orders closed against wg.Add
	closed  bool

	sent, dropped, skipped atomic.Uint64
}

func newMirror(o MirrorOptions, s *Splitter) (*mirror, error) {
	if o.Weight > MaxWeight {
		return nil, optErr("Mirror.Weight", "%d basis points is above %d (100%%)", o.Weight, MaxWeight)
	}
	if o.MaxConcurrent < 0 {
		return nil, optErr("Mirror.MaxConcurrent", "must not be negative, got %d", o.MaxConcurrent)
	}
	m := &mirror{s: s, weight: o.Weight, maxBody: o.MaxBody, timeout: o.Timeout, header: http.CanonicalHeaderKey(o.Header)}
	if m.weight == 0 {
		m.weight = MaxWeight
	}
	if m.maxBody == 0 {
		m.maxBody = DefaultMirrorMaxBody
	}
	if m.timeout <= 0 {
		m.timeout = DefaultMirrorTimeout
	}
	if m.header == "" {
		m.header = DefaultMirrorHeader
	}
	n := o.MaxConcurrent
	if n == 0 {
		n = DefaultMirrorConcurrency
	}
	m.slots = make(chan struct{}, n)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m, nil
}

// capture is the copy of a request body being read by the stable handler.
type capture struct {
	body *teeBody // nil for a request without a body
}

var noBody = &capture{}

type teeBody struct {
	io.ReadCloser
	buf  bytes.Buffer
	want int64
	over bool
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if n > 0 && !t.over {
		if int64(t.buf.Len()+n) > t.want {
			t.over = true // more than Content-Length: do not trust it
		} else {
			t.buf.Write(p[:n])
		}
	}
	return n, err
}

// complete reports whether the whole declared body was captured.
func (t *teeBody) complete() bool { return !t.over && int64(t.buf.Len()) == t.want }

func (m *mirror) capture(r *http.Request) *capture {
	if m.weight < MaxWeight && rand.Uint32N(MaxWeight) >= m.weight {
		return nil
	}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return noBody
	}
	if r.ContentLength < 0 || r.ContentLength > m.maxBody {
		m.skipped.Add(1)
		return nil
	}
	// The buffer grows as the stable handler reads: a request that
	// declares a large body and sends little costs only what it sent.
	t := &teeBody{ReadCloser: r.Body, want: r.ContentLength}
	r.Body = t
	return &capture{body: t}
}

// send starts the copy if a slot is free. It is called after the stable
// handler returned; it never blocks.
func (m *mirror) send(r *http.Request, c *capture) {
	var body []byte
	if c.body != nil {
		if !c.body.complete() {
			m.skipped.Add(1)
			return
		}
		body = c.body.buf.Bytes()
	}
	select {
	case m.slots <- struct{}{}:
	default:
		m.dropped.Add(1)
		return
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		<-m.slots
		m.dropped.Add(1)
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	// The clone is taken here, before ServeHTTP returns, because the
	// server may recycle parts of the request afterwards.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), m.timeout)
	stop := context.AfterFunc(m.ctx, cancel)
	cp := r.Clone(ctx)
	cp.Header.Set(m.header, "1")
	cp.Body = http.NoBody
	if body != nil {
		cp.Body = io.NopCloser(bytes.NewReader(body))
		cp.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	m.sent.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() { <-m.slots }()
		defer stop()
		defer cancel()
		m.run(cp)
	}()
}

func (m *mirror) run(r *http.Request) {
	w := &discardWriter{header: make(http.Header)}
	start := m.s.clock.Now()
	defer func() {
		p := recover()
		end := m.s.clock.Now()
		m.s.metrics.RecordAt(Mirror, end, end.Sub(start), p != nil || m.s.classify(Response{Request: r, Status: w.status, Header: w.header}))
		m.s.otel.record(Mirror, end.Sub(start))
		if p != nil && p != http.ErrAbortHandler {
			m.s.log.Error("canary: mirrored request panicked", "path", r.URL.Path, "panic", p)
		}
	}()
	m.s.canary.ServeHTTP(w, r)
}

func (m *mirror) stats() MirrorStats {
	return MirrorStats{Sent: m.sent.Load(), Dropped: m.dropped.Load(), Skipped: m.skipped.Load()}
}

func (m *mirror) shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// The copies are told to stop; Close waits for them.
		m.cancel()
		return ctx.Err()
	}
}

func (m *mirror) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// discardWriter is the ResponseWriter of a mirrored request: it keeps the
// status and throws the body away.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(b), nil
}
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

// MirrorStats returns the mirror's counters; zero without mirroring.
func (s *Splitter) MirrorStats() MirrorStats {
	if s.mirror == nil {
		return MirrorStats{}
	}
	return s.mirror.stats()
}
