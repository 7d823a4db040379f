//go:build unix

package fleetflags_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/fleetflags"
	"github.com/batonhq/baton/rollout/fleet/internal/fleethost"
)

const fleetDoc = `# the fleet's flags
flags:
  checkout:
    variants: {on: true, off: false}
    default: off
`

// badDoc serves a variant the flag (on line 3) does not have.
const badDoc = `# the fleet's flags
flags:
  checkout:
    variants: {on: true, off: false}
    default: off
    serve: maybe
`

type flagFleet struct {
	t     *testing.T
	m     *fleet.Member
	w     *fleetflags.Writer
	hosts []*fleethost.Host
	addrs []string
	env   []string
	c     *http.Client
}

func (f *flagFleet) call(method, url, body string) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// await waits until host i answers want for flag (an /eval answer).
func (f *flagFleet) await(i int, flag, want string) {
	f.t.Helper()
	f.awaitMatch(i, flag, want, func(got string) bool { return got == want })
}

func (f *flagFleet) awaitMatch(i int, flag, want string, match func(string) bool) {
	f.t.Helper()
	testchild.Eventually(f.t, fmt.Sprintf("%s to serve %s as %q", f.hosts[i].ID, flag, want), 30*time.Second, 20*time.Millisecond, func() error {
		if code, got := f.call(http.MethodGet, "http://"+f.addrs[i]+"/eval?flag="+flag, ""); code != 200 || !match(got) {
			return fmt.Errorf("%d %q", code, got)
		}
		return nil
	})
}

func (f *flagFleet) awaitAll(flag, want string) {
	f.t.Helper()
	for i := range f.hosts {
		f.await(i, flag, want)
	}
}

func (f *flagFleet) start(i int, dir string) {
	id := fmt.Sprintf("host%d", i+1)
	h := fleethost.Start(f.t, "flags-host", id, i+1, dir, f.env...)
	if i < len(f.hosts) {
		f.hosts[i], f.addrs[i] = h, h.Addr
	} else {
		f.hosts, f.addrs = append(f.hosts, h), append(f.addrs, h.Addr)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestProcessFlags runs three host processes, each with a local flag file
// beside the fleet's document. A document stored by the test, and a change
// through one host's admin API, are served by every host; a bad document
// and a bad admin change are refused with line-accurate errors and change
// nothing anywhere. With the engine gone every host keeps the last version
// and reports STALE through the OpenFeature provider; a host restarted
// meanwhile serves its cached copy, STALE; when the engine is back every
// host catches up and is READY.
func TestProcessFlags(t *testing.T) {
	fleethost.Each(t, func(t *testing.T, b *fleethost.Backend) {
		ns := fleethost.Namespace()
		outEnv, cut, restore, writesDuring := b.Outage(t)
		f := &flagFleet{t: t, env: append(append(slices.Clone(b.Env), "FLEET_NS="+ns), outEnv...), c: &http.Client{Timeout: 5 * time.Second}}
		defer f.c.CloseIdleConnections()
		m, err := fleethost.Join(ctx(t), b.Open(t), ns, "test", "test", "")
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		f.m, f.w = m, fleetflags.NewWriter(m, "")
		dirs := []string{fleethost.Dir(t, "host1"), fleethost.Dir(t, "host2"), fleethost.Dir(t, "host3")}
		for i := range 3 {
			f.start(i, dirs[i])
			h := f.hosts[i]
			h.Lines.AwaitPrefix(t, "joined "+h.ID, 30*time.Second)
		}
		// No document yet: the fleet serves no flag of its own, the files do.
		for i := range f.hosts {
			f.awaitMatch(i, "local-flag", "true <any> READY", func(got string) bool {
				return strings.HasPrefix(got, "true ") && strings.HasSuffix(got, " READY")
			})
		}

		rev1, err := f.w.Put(ctx(t), []byte(fleetDoc), 0)
		if err != nil {
			t.Fatal(err)
		}
		f.awaitAll("checkout", fmt.Sprintf("false %d READY", rev1))

		// An admin change on host2 goes to every host.
		if code, body := f.call(http.MethodPut, "http://"+f.addrs[1]+"/admin/flags/checkout/percent", `{"variant":"on","percent":100}`); code != 200 {
			t.Fatalf("admin percent on host2: %d %s", code, body)
		}
		data, rev2, err := f.w.Get(ctx(t))
		if err != nil || rev2 <= rev1 || !strings.Contains(string(data), "checkout:") || !strings.Contains(string(data), "# the fleet's flags") {
			t.Fatalf("the stored document after the admin change (revision %d, %v):\n%s", rev2, err, data)
		}
		served := fmt.Sprintf("true %d READY", rev2)
		f.awaitAll("checkout", served)

		// Bad changes are refused before they are stored.
		_, err = f.w.Put(ctx(t), []byte(badDoc), fleet.Any)
		var le *flags.LoadError
		if !errors.As(err, &le) || le.Line != 3 || le.Flag != "checkout" || !errors.Is(err, flags.ErrInvalid) {
			t.Fatalf("bad document: %v, want a LoadError on line 3, flag checkout", err)
		}
		t.Logf("%s: bad document refused: %v", b.Name, err)
		if code, body := f.call(http.MethodPut, "http://"+f.addrs[0]+"/admin/flags/checkout/percent", `{"variant":"maybe","percent":10}`); code != 400 {
			t.Fatalf("bad admin change on host1: %d %s, want 400", code, body)
		}
		if _, rev, err := f.w.Get(ctx(t)); err != nil || rev != rev2 {
			t.Fatalf("after the refused changes the document is at %d (%v), want %d", rev, err, rev2)
		}
		for i := range f.hosts {
			f.await(i, "checkout", served)
		}

		// The engine goes away.
		cut()
		for i := range f.hosts {
			f.await(i, "checkout", fmt.Sprintf("true %d STALE", rev2))
			f.await(i, "local-flag", fmt.Sprintf("true %d STALE", rev2))
		}
		f.hosts[2].Kill(t)
		f.start(2, dirs[2])
		f.await(2, "checkout", fmt.Sprintf("true %d STALE", rev2))
		t.Logf("%s: engine down; host3 restarted and serves its cached version %d, STALE", b.Name, rev2)

		off := strings.Replace(fleetDoc, "default: off", "default: off\n    serve: off", 1)
		var rev3 int64
		if writesDuring {
			if rev3, err = f.w.Put(ctx(t), []byte(off), rev2); err != nil {
				t.Fatal(err)
			}
		}
		restore()
		if !writesDuring {
			testchild.Eventually(t, "writing after the restart", 30*time.Second, 50*time.Millisecond, func() error {
				c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				rev3, err = f.w.Put(c, []byte(off), rev2)
				return err
			})
		}
		f.hosts[2].Lines.AwaitPrefix(t, "joined host3", 30*time.Second)
		f.awaitAll("checkout", fmt.Sprintf("false %d READY", rev3))
		f.awaitAll("local-flag", fmt.Sprintf("true %d READY", rev3))
	})
}
