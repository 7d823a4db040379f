// Package h2raw is a minimal HTTP/2 client on x/net's Framer for tests and
// load programs that must see the frames themselves: it reports GOAWAY as
// an event, and it opens connections by TLS (ALPN h2), by prior knowledge
// (h2c) or by the HTTP/1.1 Upgrade to h2c, which no Go client library
// speaks. It sends GET requests only, and grants the server all the flow
// control window it uses.
package h2raw

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Event is what the server sent: a whole response, a GOAWAY, a stream
// reset, or the connection's end.
type Event struct {
	Kind     Kind
	StreamID uint32
	Status   int    // Response
	Body     []byte // Response
	// LastStreamID and Code are a GOAWAY's; Code is a RST_STREAM's too.
	LastStreamID uint32
	Code         http2.ErrCode
	Err          error // Closed: why reading ended
}

// Kind says what an Event is.
type Kind int

// Event kinds.
const (
	Response Kind = iota
	GoAway
	Reset
	Closed
)

func (k Kind) String() string {
	return [...]string{"response", "goaway", "reset", "closed"}[k]
}

// Conn is one HTTP/2 connection. Its reading goroutine ends when the
// connection does; Close ends it.
type Conn struct {
	nc     net.Conn
	scheme string
	host   string
	events chan Event

	wmu    sync.Mutex // the framer's writes and the encoder
	fr     *http2.Framer
	hbuf   bytes.Buffer
	enc    *hpack.Encoder
	nextID uint32

	done chan struct{}
}

// DialPrior opens an h2c connection with prior knowledge.
func DialPrior(ctx context.Context, addr string) (*Conn, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return start(nc, "http", addr, 1)
}

// DialTLS opens an HTTP/2 connection over TLS (cfg's NextProtos is set to
// h2).
func DialTLS(ctx context.Context, addr string, cfg *tls.Config) (*Conn, error) {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	nc, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if p := nc.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
		nc.Close()
		return nil, fmt.Errorf("h2raw: server negotiated %q, not h2", p)
	}
	return start(nc, "https", addr, 1)
}

// DialUpgrade opens an h2c connection by the HTTP/1.1 Upgrade: a GET of
// path with Upgrade: h2c. The server answers it as stream 1 of the new
// connection; that answer is the first Response event.
func DialUpgrade(ctx context.Context, addr, path string) (*Conn, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(d)
	}
	// The HTTP2-Settings header carries the SETTINGS payload: none here.
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade, HTTP2-Settings\r\n" +
		"Upgrade: h2c\r\nHTTP2-Settings: " + base64.RawURLEncoding.EncodeToString(nil) + "\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("h2raw: upgrade answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		nc.Close()
		return nil, fmt.Errorf("h2raw: upgrade refused: %s %q", resp.Status, b)
	}
	_ = nc.SetDeadline(time.Time{})
	return start(&bufConn{Conn: nc, r: br}, "http", addr, 3)
}

// bufConn reads what the bufio.Reader holds before the connection.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func start(nc net.Conn, scheme, host string, first uint32) (*Conn, error) {
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		nc.Close()
		return nil, err
	}
	c := &Conn{nc: nc, scheme: scheme, host: host, events: make(chan Event, 256), nextID: first, done: make(chan struct{})}
	c.fr = http2.NewFramer(nc, nc)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.wmu.Lock()
	err := c.fr.WriteSettings()
	if err == nil {
		// A large connection window: the server never waits on us.
		err = c.fr.WriteWindowUpdate(0, 1<<30)
	}
	c.wmu.Unlock()
	if err != nil {
		nc.Close()
		return nil, err
	}
	go c.read()
	return c, nil
}

// Events returns the channel of what the server sends; it is closed after
// the Closed event.
func (c *Conn) Events() <-chan Event { return c.events }

// Get sends a GET of path and returns its stream ID.
func (c *Conn) Get(path string) (uint32, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	id := c.nextID
	c.nextID += 2
	c.hbuf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", c.scheme}, {":authority", c.host}, {":path", path}} {
		if err := c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			return 0, err
		}
	}
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: true, EndHeaders: true})
	return id, err
}

// Close closes the connection and waits for the reading goroutine,
// discarding events nobody read.
func (c *Conn) Close() error {
	err := c.nc.Close()
	for range c.events {
	}
	<-c.done
	return err
}

func (c *Conn) read() {
	defer close(c.done)
	defer close(c.events)
	type stream struct {
		status int
		body   []byte
	}
	streams := map[uint32]*stream{}
	get := func(id uint32) *stream {
		s := streams[id]
		if s == nil {
			s = &stream{}
			streams[id] = s
		}
		return s
	}
	end := func(id uint32) {
		s := get(id)
		delete(streams, id)
		c.events <- Event{Kind: Response, StreamID: id, Status: s.status, Body: s.body}
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.events <- Event{Kind: Closed, Err: err}
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.write(func() error { return c.fr.WriteSettingsAck() })
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				c.write(func() error { return c.fr.WritePing(true, f.Data) })
			}
		case *http2.MetaHeadersFrame:
			if st := f.PseudoValue("status"); st != "" {
				get(f.StreamID).status, _ = strconv.Atoi(st)
			}
			if f.StreamEnded() {
				end(f.StreamID)
			}
		case *http2.DataFrame:
			s := get(f.StreamID)
			s.body = append(s.body, f.Data()...)
			if n := uint32(len(f.Data())); n > 0 {
				c.write(func() error { return c.fr.WriteWindowUpdate(f.StreamID, n) })
			}
			if f.StreamEnded() {
				end(f.StreamID)
			}
		case *http2.RSTStreamFrame:
			delete(streams, f.StreamID)
			c.events <- Event{Kind: Reset, StreamID: f.StreamID, Code: f.ErrCode}
		case *http2.GoAwayFrame:
			c.events <- Event{Kind: GoAway, LastStreamID: f.LastStreamID, Code: f.ErrCode}
		}
	}
}

func (c *Conn) write(f func() error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = f()
}

// ErrTimeout is returned by Next when nothing arrived in time.
var ErrTimeout = errors.New("h2raw: timed out waiting for the server")

// Next returns the next event, or ErrTimeout after d.
func (c *Conn) Next(d time.Duration) (Event, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case ev, ok := <-c.events:
		if !ok {
			return Event{Kind: Closed, Err: io.EOF}, nil
		}
		return ev, nil
	case <-t.C:
		return Event{}, ErrTimeout
	}
}

// String describes an event for failure messages.
func (e Event) String() string {
	switch e.Kind {
	case Response:
		return fmt.Sprintf("response on stream %d: %d %q", e.StreamID, e.Status, strings.TrimSpace(string(e.Body)))
	case GoAway:
		return fmt.Sprintf("GOAWAY (last stream %d, %v)", e.LastStreamID, e.Code)
	case Reset:
		return fmt.Sprintf("RST_STREAM on stream %d (%v)", e.StreamID, e.Code)
	}
	return fmt.Sprintf("connection closed: %v", e.Err)
}
