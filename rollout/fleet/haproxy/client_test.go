package haproxy_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout/fleet/haproxy"
	"github.com/batonhq/baton/rollout/fleet/haproxy/haproxytest"
)

// fakeSocket serves one answer per connection on a unix socket: reply is
// called with the command line received and writes what it wants.
func fakeSocket(t *testing.T, reply func(c net.Conn, line string)) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hxfake")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 512)
			n, _ := c.Read(buf)
			reply(c, strings.TrimSuffix(string(buf[:n]), "\n"))
			c.Close()
		}
	}()
	return path
}

func TestClientBoundsTheReply(t *testing.T) {
	path := fakeSocket(t, func(c net.Conn, line string) {
		_, _ = c.Write([]byte("# pxname,svname\n" + strings.Repeat("x", 5000)))
	})
	c, err := haproxy.NewClient(path, haproxy.ClientOptions{MaxReply: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stats(context.Background(), "app"); !errors.Is(err, haproxy.ErrReplyTooLarge) {
		t.Errorf("5000-byte reply with MaxReply 1024: %v; want ErrReplyTooLarge", err)
	}
}

func TestClientTimesOut(t *testing.T) {
	release := make(chan struct{})
	var got []string
	lines := make(chan string, 4)
	path := fakeSocket(t, func(c net.Conn, line string) {
		lines <- line
		<-release // never answers while the test runs
	})
	t.Cleanup(func() { close(release) }) // before fakeSocket's: cleanups run last first
	c, err := haproxy.NewClient(path, haproxy.ClientOptions{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = c.SetState(context.Background(), "app", "blue1", haproxy.Drain)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "set server app/blue1 state drain") {
		t.Errorf("server that never answers: %v; want a deadline error naming the command", err)
	}
	got = append(got, <-lines)
	if got[0] != "set server app/blue1 state drain" {
		t.Errorf("sent %q", got[0])
	}
}

func TestClientRefusedCommand(t *testing.T) {
	path := fakeSocket(t, func(c net.Conn, line string) { _, _ = c.Write([]byte("Permission denied\n\n")) })
	c, _ := haproxy.NewClient(path, haproxy.ClientOptions{})
	err := c.SetWeight(context.Background(), "app", "blue1", 10)
	var ce *haproxy.CommandError
	if !errors.As(err, &ce) || ce.Reply != "Permission denied" || ce.Command != "set server app/blue1 weight 10" {
		t.Errorf("refused command: %v; want a CommandError with the command and the reply", err)
	}
}

func TestNewSwitchChecks(t *testing.T) {
	c, _ := haproxy.NewClient("/nonexistent/admin.sock", haproxy.ClientOptions{})
	ok := haproxy.SwitchOptions{Client: c, Backend: "app", Blue: haproxy.Group{Servers: []string{"b"}}, Green: haproxy.Group{Servers: []string{"g"}}}
	if _, err := haproxy.NewSwitch(ok); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(o *haproxy.SwitchOptions){
		"no client":      func(o *haproxy.SwitchOptions) { o.Client = nil },
		"bad backend":    func(o *haproxy.SwitchOptions) { o.Backend = "app;help" },
		"empty green":    func(o *haproxy.SwitchOptions) { o.Green.Servers = nil },
		"shared server":  func(o *haproxy.SwitchOptions) { o.Green.Servers = []string{"b"} },
		"bad server":     func(o *haproxy.SwitchOptions) { o.Blue.Servers = []string{"b\nshow info"} },
		"weight too big": func(o *haproxy.SwitchOptions) { o.Green.Weight = 257 },
	} {
		o := ok
		mod(&o)
		if _, err := haproxy.NewSwitch(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRender(t *testing.T) {
	c := haproxy.Config{Backends: []haproxy.Backend{{
		Name: "app", Listen: "127.0.0.1:8080", HealthPath: "/healthz", Retry: true,
		Servers: []haproxy.Server{{Name: "blue1", Address: "10.0.0.1:80"}, {Name: "green1", Address: "10.0.0.2:80", Weight: 7, Disabled: true}},
	}}}
	text, err := c.Render("/run/haproxy/admin.sock", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"stats socket /run/haproxy/admin.sock mode 600 level admin",
		"listen app\n  bind 127.0.0.1:8080\n",
		"option httpchk GET /healthz",
		"retries 3\n  option redispatch 1\n  retry-on conn-failure empty-response\n",
		"server blue1 10.0.0.1:80 weight 100 check inter 500ms",
		"server green1 10.0.0.2:80 weight 7 check inter 500ms fall 2 rise 1 disabled",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("config lacks %q:\n%s", want, text)
		}
	}
	for name, mod := range map[string]func(c *haproxy.Config){
		"no backend":      func(c *haproxy.Config) { c.Backends = nil },
		"bad address":     func(c *haproxy.Config) { c.Backends[0].Servers[0].Address = "10.0.0.1:80 backup" },
		"bad health path": func(c *haproxy.Config) { c.Backends[0].HealthPath = "/x\n  mode tcp" },
		"bad server name": func(c *haproxy.Config) { c.Backends[0].Servers[0].Name = "a b" },
	} {
		cc := c
		cc.Backends = []haproxy.Backend{c.Backends[0]}
		cc.Backends[0].Servers = append([]haproxy.Server(nil), c.Backends[0].Servers...)
		mod(&cc)
		if _, err := cc.Render("/s", nil); err == nil {
			t.Errorf("%s: rendered", name)
		}
	}
}

func TestStartReportsExit(t *testing.T) {
	if _, err := os.Stat("/bin/false"); err != nil {
		t.Skip("no /bin/false")
	}
	dir, _ := os.MkdirTemp("", "hxexit")
	defer os.RemoveAll(dir)
	_, err := haproxy.Start(context.Background(), haproxy.Config{Binary: "/bin/false", Dir: dir, Backends: []haproxy.Backend{{
		Name: "app", Servers: []haproxy.Server{{Name: "s", Address: "127.0.0.1:1"}},
	}}})
	if err == nil || !strings.Contains(err.Error(), "exited before its admin socket answered") {
		t.Errorf("haproxy that exits at once: %v; want an error saying it exited", err)
	}
}

// A Process with no Dir makes its own and removes it after a soft stop.
func TestProcessShutdown(t *testing.T) {
	bin := haproxytest.Binary(t)
	ctx := context.Background()
	p, err := haproxy.Start(ctx, haproxy.Config{Binary: bin, Backends: []haproxy.Backend{{
		Name: "app", Servers: []haproxy.Server{{Name: "s1", Address: "127.0.0.1:1"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p.AdminSocket())
	if fi, err := os.Stat(p.AdminSocket()); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket mode %v; want 0600", fi.Mode().Perm())
	}
	st, err := p.Client().Stats(ctx, "app")
	if err != nil || len(st) != 1 || st[0].Server != "s1" {
		t.Errorf("stats of the started HAProxy: %v, %v", st, err)
	}
	if p.Addr("app") == "" || p.Addr("nosuch") != "" {
		t.Errorf("Addr(app) %q, Addr(nosuch) %q", p.Addr("app"), p.Addr("nosuch"))
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Shutdown")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory %s after Shutdown: %v; want it removed", dir, err)
	}
	p.Close() // idempotent after Shutdown
}

// A server whose address is not known when HAProxy starts is brought in
// with SetAddr and SetState, as a fleet does when an instance registers.
func TestSetAddr(t *testing.T) {
	bin := haproxytest.Binary(t)
	b, err := haproxytest.NewBackend("v9", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Kill()
	ctx := context.Background()
	p, err := haproxy.Start(ctx, haproxy.Config{Binary: bin, Backends: []haproxy.Backend{{
		Name: "app", Servers: []haproxy.Server{{Name: "late"}}, HealthPath: "/healthz", CheckInterval: 100 * time.Millisecond,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := p.Client()
	if st := statuses(t, c); st["late"] != "MAINT" {
		t.Fatalf("server with no address: %v; want it in maintenance", st)
	}
	for _, bad := range []string{"localhost:80", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:80 weight 1"} {
		if err := c.SetAddr(ctx, "app", "late", bad); err == nil {
			t.Errorf("address %q accepted", bad)
		}
	}
	if err := c.SetAddr(ctx, "app", "nosuch", b.Addr()); !errors.Is(err, haproxy.ErrRuntime) {
		t.Errorf("address of an unknown server: %v; want ErrRuntime", err)
	}
	for range 2 { // the second is "no need to change"
		if err := c.SetAddr(ctx, "app", "late", b.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetState(ctx, "app", "late", haproxy.Ready); err != nil {
		t.Fatal(err)
	}
	await(t, "the server up after its check", func() bool {
		st, err := c.Stats(ctx, "app")
		return err == nil && len(st) == 1 && st[0].Checked()
	})
	load := haproxytest.StartLoad("http://"+p.Addr("app")+"/", 2)
	await(t, "requests answered", func() bool { return b.Served() >= 10 })
	reqs := load.Stop()
	checkAll(t, "through the server brought in", reqs, "v9")
}
