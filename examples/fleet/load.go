//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/rollout/fleet"
)

// balancer spreads requests over the fleet's ready members, as a load
// balancer does with health checks: its server list is the membership
// (members whose state is ready, or baking/upgrading, since both serve),
// refreshed from the engine. A request whose connection fails before an
// answer (the server was killed, its address no longer accepts) is sent to
// the next server, at most maxTries times in all, as HAProxy's
// "retry-on conn-failure empty-response" with "option redispatch" does;
// such retries are counted and reported, and a request is failed when
// every try failed or an answer was not 200.
type balancer struct {
	e     fleet.Engine
	keys  fleet.Layout
	fixed []string // a load balancer in front: its address only

	mu      sync.Mutex
	servers []string
	next    int
	down    map[string]time.Time // marked down by a failed connection, until then
}

// markDownFor is how long a server whose connection failed gets no new
// request (HAProxy's "observe layer4" with "on-error mark-down" does the
// same); the membership list drops a dead one within the lease TTL.
const markDownFor = time.Second

func (b *balancer) markDown(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down == nil {
		b.down = map[string]time.Time{}
	}
	b.down[addr] = time.Now().Add(markDownFor)
}

const maxTries = 3

func (b *balancer) refresh(ctx context.Context) {
	if b.fixed != nil {
		b.mu.Lock()
		b.servers = b.fixed
		b.mu.Unlock()
		return
	}
	ms, err := liveMembers(ctx, b.e, b.keys)
	if err != nil {
		return
	}
	var addrs []string
	for _, m := range ms {
		if m.Address != "" && m.State != fleet.StateDraining && m.State != fleet.StateStopped && m.State != fleet.StateStarting {
			addrs = append(addrs, m.Address)
		}
	}
	sort.Strings(addrs)
	b.mu.Lock()
	b.servers = addrs
	b.mu.Unlock()
}

// pick returns the next server in turn that this request has not tried,
// one not marked down if there is one.
func (b *balancer) pick(tried []string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	fallback := ""
	for range b.servers {
		b.next++
		s := b.servers[b.next%len(b.servers)]
		if slices.Contains(tried, s) {
			continue
		}
		if time.Now().Before(b.down[s]) {
			if fallback == "" {
				fallback = s
			}
			continue
		}
		return s
	}
	return fallback
}

// load is the clients and their counts.
type load struct {
	b        *balancer
	ok       atomic.Int64
	failed   atomic.Int64
	retried  atomic.Int64
	mu       sync.Mutex
	failures []string
	versions map[string]int64
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

func startLoad(b *balancer, clients, rate int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{b: b, stop: cancel, versions: map[string]int64{}}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			b.refresh(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	b.refresh(ctx)
	per := time.Duration(int64(time.Second) * int64(clients) / int64(max(rate, 1)))
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
			defer client.CloseIdleConnections()
			t := time.NewTicker(per)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				l.one(ctx, client)
			}
		}()
	}
	return l
}

func (l *load) one(ctx context.Context, client *http.Client) {
	var last error
	var tried []string
	for try := 0; try < maxTries; try++ {
		addr := l.b.pick(tried)
		if addr == "" {
			if last == nil {
				last = errors.New("no server in the fleet")
			}
			break
		}
		tried = append(tried, addr)
		if try > 0 {
			l.retried.Add(1)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/work", nil)
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			last = err
			l.b.markDown(addr)
			continue // connection failed, no answer: the next server
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			last = fmt.Errorf("%s: reading the answer: %w", addr, err)
		case resp.StatusCode != http.StatusOK:
			last = fmt.Errorf("%s answered %s", addr, resp.Status)
		default:
			l.ok.Add(1)
			f := strings.Fields(string(body))
			if len(f) == 2 {
				l.mu.Lock()
				l.versions[f[1]]++
				l.mu.Unlock()
			}
			return
		}
		break // an answer that is not a success is not retried
	}
	if ctx.Err() != nil {
		return
	}
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, last.Error())
	}
	l.mu.Unlock()
}

func (l *load) halt() {
	l.stop()
	l.wg.Wait()
}

func (l *load) byVersion() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var vs []string
	for v := range l.versions {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	var parts []string
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("%s %d", v, l.versions[v]))
	}
	return strings.Join(parts, ", ")
}
