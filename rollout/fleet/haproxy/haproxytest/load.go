package haproxytest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Request is one request of a Load. The zero value is a request that
// never started.
type Request struct {
	Start, End time.Time
	// Version is the X-Version header of the answer ("" when it failed).
	Version string
	// Err is why the request failed: a transport error or a status other
	// than 200.
	Err error
}

// Load is a set of clients sending requests in a loop, each on its own
// keep-alive connection, until Stop. The requests are POSTs with a small
// body: HAProxy retries an idempotent request whose server connection
// closed before the answer, which would hide a request that a stopped
// server lost; it does not retry a POST. The zero value is not usable: use
// StartLoad.
type Load struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	reqs []Request
}

// StartLoad starts clients goroutines that POST to url in a loop.
func StartLoad(url string, clients int) *Load {
	l := &Load{stop: make(chan struct{})}
	for range clients {
		l.wg.Add(1)
		go l.client(url)
	}
	return l
}

func (l *Load) client(url string) {
	defer l.wg.Done()
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		r := Request{Start: time.Now()}
		resp, err := c.Post(url, "text/plain", strings.NewReader("ping"))
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %s", resp.Status)
			}
			if err == nil {
				r.Version = resp.Header.Get("X-Version")
			}
		}
		r.End, r.Err = time.Now(), err
		l.mu.Lock()
		l.reqs = append(l.reqs, r)
		l.mu.Unlock()
	}
}

// Requests returns the requests finished so far, in the order they ended.
func (l *Load) Requests() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Request(nil), l.reqs...)
}

// Stop stops the clients, waits for their last requests and returns every
// request. It must be called once.
func (l *Load) Stop() []Request {
	close(l.stop)
	l.wg.Wait()
	return l.Requests()
}

// Failed returns the failed requests of reqs.
func Failed(reqs []Request) []Request {
	var out []Request
	for _, r := range reqs {
		if r.Err != nil {
			out = append(out, r)
		}
	}
	return out
}

// StartedAfter returns the requests of reqs that started after t.
func StartedAfter(reqs []Request, t time.Time) []Request {
	var out []Request
	for _, r := range reqs {
		if r.Start.After(t) {
			out = append(out, r)
		}
	}
	return out
}
