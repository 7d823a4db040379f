package main

//lint:file-ignore SA1019 x/net's http2.Transport is deprecated in favour of http.Transport.Protocols, but clients still use it: the h2c-xnet mode drives x/net's server with x/net's client.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/batonhq/baton/internal/h2raw"
)

// A client process runs one client of a mode until its standard input
// closes. On standard output it writes a JSON line each time the process
// answering it changes ({"pid":..,"at":..}) and, at the end, its report.

// clientReport is what a client process reports when it stops.
type clientReport struct {
	OK       int               `json:"ok"`
	Failed   int               `json:"failed"`
	Fails    map[string]int    `json:"fails,omitempty"`
	Examples map[string]string `json:"examples,omitempty"`
	// Retried counts requests the client library sent again by itself
	// (HTTP/2 streams refused by a GOAWAY), which are not failures.
	Retried int `json:"retried"`
	// Last is when each process last answered, in Unix nanoseconds.
	Last map[string]int64 `json:"last"`
	// WebSocket: dials, failed dials, messages sent again after a
	// connection closed before their echo, and messages never echoed.
	Dials       int `json:"dials,omitempty"`
	DialFailed  int `json:"dial_failed,omitempty"`
	Resent      int `json:"resent,omitempty"`
	Lost        int `json:"lost,omitempty"`
	Sent        int `json:"sent,omitempty"`
	StreamsOpen int `json:"streams_opened,omitempty"`
	// StreamsFailed counts gRPC streams that ended with an error.
	StreamsFailed int `json:"streams_failed,omitempty"`
}

// tally is a client's running record.
type tally struct {
	mu        sync.Mutex
	r         clientReport
	cur       string // the process that answered last
	curStream string // the process that sent the last stream message
	out       *json.Encoder
}

func newTally() *tally {
	return &tally{r: clientReport{Fails: map[string]int{}, Examples: map[string]string{}, Last: map[string]int64{}}, out: json.NewEncoder(os.Stdout)}
}

// answered records an answer from pid (as the server wrote it: "pid=N").
func (t *tally) answered(pid string) {
	now := time.Now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.r.OK++
	t.r.Last[pid] = now
	if pid != t.cur {
		t.cur = pid
		_ = t.out.Encode(map[string]any{"pid": pid, "at": now})
	}
}

// streamed records a stream message from pid.
func (t *tally) streamed(pid string) {
	now := time.Now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.r.Last[pid] = now
	if pid != t.curStream {
		t.curStream = pid
		_ = t.out.Encode(map[string]any{"stream_pid": pid, "at": now})
	}
}

func (t *tally) fail(class, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.r.Failed++
	t.r.Fails[class]++
	t.r.Examples[class] = msg
}

func (t *tally) add(f func(r *clientReport)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(&t.r)
}

func (t *tally) report() {
	t.mu.Lock()
	defer t.mu.Unlock()
	_ = t.out.Encode(map[string]any{"report": t.r})
}

// runClient is a client process's main.
func runClient(mode, addr, caFile string) error {
	ctx, stop := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	t := newTally()
	var err error
	switch mode {
	case "h2c", "h2c-xnet", "h2-tls":
		var c *http.Client
		if c, err = httpClient(mode, caFile); err == nil {
			httpLoop(ctx, t, c, scheme(mode)+"://"+addr+"/")
		}
	case "h2c-upgrade":
		upgradeLoop(ctx, t, addr)
	case "ws":
		wsLoop(ctx, t, "ws://"+addr+"/ws")
	case "grpc":
		err = grpcLoop(ctx, t, addr)
	default:
		err = fmt.Errorf("no client mode %q", mode)
	}
	t.report()
	return err
}

func scheme(mode string) string {
	if mode == "h2-tls" {
		return "https"
	}
	return "http"
}

// httpClient is the real client library of each mode: net/http's own
// unencrypted HTTP/2 (prior knowledge), x/net's http2.Transport for h2c,
// and net/http over TLS negotiating h2.
func httpClient(mode, caFile string) (*http.Client, error) {
	switch mode {
	case "h2c":
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		return &http.Client{Transport: &http.Transport{Protocols: p}, Timeout: 10 * time.Second}, nil
	case "h2c-xnet":
		tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}

// httpLoop sends GET requests one after another and checks each answer
// came over HTTP/2.
func httpLoop(ctx context.Context, t *tally, c *http.Client, url string) {
	for ctx.Err() == nil {
		var conns atomic.Int32
		trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { conns.Add(1) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url, nil)
		resp, err := c.Do(req)
		if conns.Load() > 1 {
			t.add(func(r *clientReport) { r.Retried++ })
		}
		if err != nil {
			t.fail(classify(err), err.Error())
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			t.fail(classify(err), err.Error())
		case resp.StatusCode != 200:
			t.fail("non-2xx", resp.Status)
		case resp.ProtoMajor != 2:
			t.fail("not-http2", resp.Proto)
		default:
			t.answered(strings.TrimSpace(string(b)))
		}
	}
}

// upgradeLoop speaks h2c through the HTTP/1.1 Upgrade, which no Go client
// library does: the first request of each connection is the upgraded one,
// the next go as HTTP/2 streams; after a GOAWAY the connection's last
// answer is read and a new connection upgraded. A stream the GOAWAY
// refused is sent again on the next connection (retried).
func upgradeLoop(ctx context.Context, t *tally, addr string) {
	var c *h2raw.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for ctx.Err() == nil {
		var id uint32 = 1
		if c == nil {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var err error
			c, err = h2raw.DialUpgrade(dctx, addr, "/")
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					t.fail(classify(err), err.Error())
				}
				continue
			}
		} else {
			var err error
			if id, err = c.Get("/"); err != nil {
				t.fail(classify(err), err.Error())
				c.Close()
				c = nil
				continue
			}
		}
		goaway, done := false, false
		for !done {
			ev, err := c.Next(10 * time.Second)
			if err != nil {
				t.fail("timeout", err.Error())
				break
			}
			switch ev.Kind {
			case h2raw.Response:
				if ev.StreamID != id {
					continue
				}
				done = true
				if ev.Status != 200 {
					t.fail("non-2xx", strconv.Itoa(ev.Status))
				} else {
					t.answered(strings.TrimSpace(string(ev.Body)))
				}
			case h2raw.GoAway:
				goaway = true
				if ev.LastStreamID < id {
					// Never processed: send it on the next connection.
					t.add(func(r *clientReport) { r.Retried++ })
					done = true
				}
			default:
				t.fail("reset", ev.String())
				done, goaway = true, true
			}
		}
		if goaway || !done {
			c.Close()
			c = nil
		}
	}
}

// wsLoop sends numbered messages one at a time and waits for each echo;
// when the server closes the connection (going away, as it drains) it
// dials again and sends the message that had no echo yet again.
func wsLoop(ctx context.Context, t *tally, url string) {
	seq := 0
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ws, _, err := websocket.Dial(dctx, url, nil)
		cancel()
		t.add(func(r *clientReport) { r.Dials++ })
		if err != nil {
			if ctx.Err() == nil {
				t.add(func(r *clientReport) { r.DialFailed++ })
				t.fail("dial", err.Error())
			}
			continue
		}
		for ctx.Err() == nil {
			msg := "seq=" + strconv.Itoa(seq)
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := ws.Write(rctx, websocket.MessageText, []byte(msg))
			if err == nil {
				t.add(func(r *clientReport) { r.Sent++ })
			}
			var echo []byte
			if err == nil {
				_, echo, err = ws.Read(rctx)
			}
			cancel()
			if err != nil {
				if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway {
					t.fail("ws", err.Error())
				}
				// The message goes again on the next connection.
				t.add(func(r *clientReport) { r.Resent++ })
				break
			}
			pid, got, _ := strings.Cut(string(echo), " ")
			if got != msg {
				t.fail("ws-echo", fmt.Sprintf("sent %q, echo %q", msg, echo))
				t.add(func(r *clientReport) { r.Lost++ })
			} else {
				t.answered(pid)
			}
			seq++
		}
		ws.CloseNow()
	}
}

// The gRPC service of examples/grpcserver.
const (
	whoMethod   = "/baton.example.Echo/Who"
	ticksMethod = "/baton.example.Echo/Ticks"
)

var ticksDesc = &grpc.StreamDesc{StreamName: "Ticks", ServerStreams: true}

// grpcLoop calls Who one call after another and keeps one Ticks stream
// open, reopening it whenever the server ends it (OK, as a draining server
// does) or it fails (counted).
func grpcLoop(ctx context.Context, t *tally, addr string) error {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			stream, err := cc.NewStream(ctx, ticksDesc, ticksMethod)
			if err == nil {
				t.add(func(r *clientReport) { r.StreamsOpen++ })
				if err = stream.SendMsg(wrapperspb.String("")); err == nil {
					err = stream.CloseSend()
				}
				for err == nil {
					m := new(wrapperspb.StringValue)
					if err = stream.RecvMsg(m); err == nil {
						pid, _, _ := strings.Cut(m.GetValue(), " ")
						t.streamed(pid)
					}
				}
			}
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				t.add(func(r *clientReport) { r.StreamsFailed++ })
				t.fail("stream "+status.Code(err).String(), err.Error())
			}
		}
	}()
	for ctx.Err() == nil {
		out := new(wrapperspb.StringValue)
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := cc.Invoke(cctx, whoMethod, wrapperspb.String(""), out)
		cancel()
		if err != nil {
			t.fail("unary "+status.Code(err).String(), err.Error())
			continue
		}
		t.answered(out.GetValue())
	}
	wg.Wait()
	return nil
}
