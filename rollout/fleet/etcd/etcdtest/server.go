// Package etcdtest runs a real etcd server inside the process
// (go.etcd.io/etcd/server/v3/embed) for tests and examples, so that a fleet
// on etcd needs nothing installed. It is never imported by baton's library:
//
//	srv, err := etcdtest.Start(etcdtest.Options{})
//	defer srv.Close()
//	e, err := etcd.Open(clientv3.Config{Endpoints: []string{srv.Endpoint()}})
//
// Stop and Restart take the server down and bring it back on the same
// address with the same data, as an operator's restart would.
package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// DefaultStartTimeout bounds how long Start and Restart wait for the server
// to be ready.
const DefaultStartTimeout = 30 * time.Second

// Options configure Start. The zero value runs a single-node server on
// 127.0.0.1 with its data in a new temporary directory.
type Options struct {
	// Dir holds the server's data. Empty means a temporary directory that
	// Close removes.
	Dir string
	// Host is the address to listen on (a loopback address such as
	// 127.0.0.1 or 127.0.0.9). Empty means 127.0.0.1.
	Host string
	// ElectionTimeout is etcd's election timeout; the server's minimum
	// lease TTL is 1.5 times it. Zero means etcd's default, 1 s.
	ElectionTimeout time.Duration
	// Logger receives the server's logs. Nil discards them.
	Logger *zap.Logger
}

// Server is a running (or stopped) embedded etcd. Its zero value is not
// usable: use Start.
type Server struct {
	o                  Options
	ownDir             bool
	clientURL, peerURL url.URL

	mu sync.Mutex
	e  *embed.Etcd
}

// Start starts a server and waits until it serves.
func Start(o Options) (*Server, error) {
	s := &Server{o: o}
	if s.o.Host == "" {
		s.o.Host = "127.0.0.1"
	}
	if s.o.Logger == nil {
		s.o.Logger = zap.NewNop()
	}
	if s.o.Dir == "" {
		d, err := os.MkdirTemp("", "baton-etcd-")
		if err != nil {
			return nil, fmt.Errorf("etcdtest: %w", err)
		}
		s.o.Dir, s.ownDir = d, true
	}
	cp, err := freePort(s.o.Host)
	if err != nil {
		return nil, err
	}
	pp, err := freePort(s.o.Host)
	if err != nil {
		return nil, err
	}
	s.clientURL = url.URL{Scheme: "http", Host: net.JoinHostPort(s.o.Host, cp)}
	s.peerURL = url.URL{Scheme: "http", Host: net.JoinHostPort(s.o.Host, pp)}
	if err := s.start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// New starts a server for t and closes it when t ends; it fails t if the
// server does not start.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func freePort(host string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("etcdtest: finding a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}

func (s *Server) start() error {
	cfg := embed.NewConfig()
	cfg.Name = "baton"
	cfg.Dir = filepath.Join(s.o.Dir, "data")
	cfg.ListenClientUrls = []url.URL{s.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = cfg.Name + "=" + s.peerURL.String()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(s.o.Logger)
	cfg.EnableGRPCGateway = false
	if s.o.ElectionTimeout > 0 {
		cfg.ElectionMs = uint(s.o.ElectionTimeout / time.Millisecond)
		cfg.TickMs = max(1, cfg.ElectionMs/10)
	}
	if _, err := os.Stat(cfg.Dir); err == nil {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("etcdtest: starting etcd on %s: %w", s.clientURL.Host, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcdtest: etcd on %s failed to start: %w", s.clientURL.Host, err)
	case <-time.After(DefaultStartTimeout):
		e.Close()
		return fmt.Errorf("etcdtest: etcd on %s not ready after %s", s.clientURL.Host, DefaultStartTimeout)
	}
	s.mu.Lock()
	s.e = e
	s.mu.Unlock()
	return nil
}

// Endpoint is the client address, host:port.
func (s *Server) Endpoint() string { return s.clientURL.Host }

// Dir is the server's data directory.
func (s *Server) Dir() string { return s.o.Dir }

// Stop shuts the server down and keeps its data. It is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	e := s.e
	s.e = nil
	s.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Restart stops the server if it runs and starts it again on the same
// address with the same data.
func (s *Server) Restart() error {
	s.Stop()
	var err error
	// The old listeners are closed; binding again can race their release
	// by the kernel for a moment.
	for i := 0; i < 50; i++ {
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.Join(errors.New("etcdtest: restart failed"), err)
}

// Close stops the server and removes its data directory if Start made it.
func (s *Server) Close() {
	s.Stop()
	if s.ownDir {
		os.RemoveAll(s.o.Dir)
	}
}
