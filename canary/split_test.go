package canary_test

import (
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/internal/bucket"
)

func newSplitter(t testing.TB, o canary.Options) *canary.Splitter {
	t.Helper()
	if o.Stable == nil {
		o.Stable = nopHandler
	}
	if o.Canary == nil {
		o.Canary = nopHandler
	}
	s, err := canary.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func keyed(key string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-User", key)
	return r
}

func TestSplitWithinHalfPoint(t *testing.T) {
	const n = 100_000
	s := newSplitter(t, canary.Options{Key: canary.KeyOptions{Header: "X-User"}})
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = keyed("user-" + strconv.Itoa(i))
	}
	for _, w := range []uint32{1, 100, 500, 1000, 2500, 5000, 7500, 9900} {
		if err := s.SetWeight(w); err != nil {
			t.Fatal(err)
		}
		in := 0
		for _, r := range reqs {
			if s.Route(r) == canary.Canary {
				in++
			}
		}
		got := 100 * float64(in) / n
		if want := float64(w) / 100; math.Abs(got-want) > 0.5 {
			t.Errorf("weight %.2f%%: %.3f%% of %d keys in the canary", want, got, n)
		}
	}
}

// TestStickyRamp checks the stickiness properties over 10^5 keys: at a
// constant weight no key flips, raising the weight only moves keys into the
// canary, and the assignment is the flags' bucketing (so a user in a flag's
// 5% is in the canary's 5% under the same salt).
func TestStickyRamp(t *testing.T) {
	const n = 100_000
	s := newSplitter(t, canary.Options{Key: canary.KeyOptions{Header: "X-User"}, Salt: "checkout-v2"})
	reqs := make([]*http.Request, n)
	keys := make([]string, n)
	for i := range reqs {
		keys[i] = "u" + strconv.Itoa(i*7919)
		reqs[i] = keyed(keys[i])
	}
	in := make([]bool, n)
	for _, w := range []uint32{0, 1, 50, 500, 501, 2000, 5000, 9999, 10000} {
		_ = s.SetWeight(w)
		for i, r := range reqs {
			now := s.Route(r) == canary.Canary
			if in[i] && !now {
				t.Fatalf("key %s left the canary when the weight rose to %d", keys[i], w)
			}
			if again := s.Route(r) == canary.Canary; again != now {
				t.Fatalf("key %s flipped at constant weight %d", keys[i], w)
			}
			if flag := bucket.Of(bucket.Hash("checkout-v2", keys[i]), 10000) < w; flag != now {
				t.Fatalf("key %s: canary %v but flag bucketing says %v at %d", keys[i], now, flag, w)
			}
			in[i] = now
		}
	}
	for i := range in {
		if !in[i] {
			t.Fatalf("key %s not in the canary at 100%%", keys[i])
		}
	}
	// Lowering the weight moves keys only back to stable.
	_ = s.SetWeight(300)
	for i, r := range reqs {
		if s.Route(r) == canary.Canary && bucket.Of(bucket.Hash("checkout-v2", keys[i]), 10000) >= 300 {
			t.Fatalf("key %s in the canary above its bucket", keys[i])
		}
	}
}

func TestKeySources(t *testing.T) {
	// Weight 5000 and keys chosen on each side of it.
	side := func(salt string, want bool) string {
		for i := 0; ; i++ {
			k := "k" + strconv.Itoa(i)
			if (bucket.Of(bucket.Hash(salt, k), 10000) < 5000) == want {
				return k
			}
		}
	}
	in, out := side(canary.DefaultSalt, true), side(canary.DefaultSalt, false)
	s := newSplitter(t, canary.Options{Weight: 5000, Key: canary.KeyOptions{
		Func: func(r *http.Request) string {
			v, _ := r.Context().Value(ctxKey{}).(string)
			return v
		},
		Header: "X-User", Cookie: "session",
	}})
	cases := []struct {
		name string
		req  func() *http.Request
		want canary.Variant
	}{
		{"func", func() *http.Request { return withCtxKey(keyed(out), in) }, canary.Canary},
		{"header", func() *http.Request { r := keyed(in); r.AddCookie(&http.Cookie{Name: "session", Value: out}); return r }, canary.Canary},
		{"cookie", func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.AddCookie(&http.Cookie{Name: "session", Value: out})
			return r
		}, canary.Stable},
	}
	for _, c := range cases {
		v, why := s.Explain(c.req())
		if v != c.want || why != canary.ByWeight {
			t.Errorf("%s: %s by %s, want %s by weight", c.name, v, why, c.want)
		}
	}
	if _, why := s.Explain(httptest.NewRequest("GET", "/", nil)); why != canary.ByRandom {
		t.Errorf("no key: reason %s, want random", why)
	}
}

type ctxKey struct{}

func withCtxKey(r *http.Request, key string) *http.Request {
	return r.WithContext(contextWith(r, key))
}

func TestRandomSplitWithoutKey(t *testing.T) {
	s := newSplitter(t, canary.Options{Weight: 2000})
	r := httptest.NewRequest("GET", "/", nil)
	const n = 100_000
	in := 0
	for range n {
		if s.Route(r) == canary.Canary {
			in++
		}
	}
	// 5 standard deviations of a binomial(10^5, 0.2): 0.63 points.
	if got := 100 * float64(in) / n; math.Abs(got-20) > 0.65 {
		t.Errorf("random split: %.2f%% in the canary at 20%%", got)
	}
}

func TestAssignCookie(t *testing.T) {
	var seen []string
	stable := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = append(seen, "stable") })
	cnry := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = append(seen, "canary") })
	s := newSplitter(t, canary.Options{Stable: stable, Canary: cnry, Weight: 5000,
		Key: canary.KeyOptions{AssignCookie: "bucket"}})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != "bucket" || cookies[0].Value == "" || !cookies[0].HttpOnly {
		t.Fatalf("assigned cookies: %+v", cookies)
	}
	first := seen[0]
	want := canary.Stable
	if bucket.Of(bucket.Hash(canary.DefaultSalt, cookies[0].Value), 10000) < 5000 {
		want = canary.Canary
	}
	if first != want.String() {
		t.Fatalf("first request served by %s, its key's bucket says %s", first, want)
	}
	for range 50 {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(cookies[0])
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		if len(rec.Result().Cookies()) != 0 {
			t.Fatal("cookie assigned again to a request that carries one")
		}
	}
	for _, v := range seen {
		if v != first {
			t.Fatalf("a browser with an assigned cookie moved from %s to %s", first, v)
		}
	}
}

func TestPrecedence(t *testing.T) {
	staff := canary.HeaderSegment("staff", "X-Staff", "yes")
	beta := canary.KeySegment("beta", "beta-user")
	s := newSplitter(t, canary.Options{
		Key:      canary.KeyOptions{Header: "X-User"},
		Segments: []canary.Segment{staff, beta, canary.CookieSegment("opt-in", "canary-opt-in", "1")},
	})
	req := func(hdr ...string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return r
	}
	optIn := req()
	optIn.AddCookie(&http.Cookie{Name: "canary-opt-in", Value: "1"})
	check := func(name string, r *http.Request, v canary.Variant, why canary.Reason) {
		t.Helper()
		if gv, gw := s.Explain(r); gv != v || gw != why {
			t.Errorf("%s: %s by %s, want %s by %s", name, gv, gw, v, why)
		}
	}
	// Weight 0: only overrides and segments reach the canary.
	check("plain", req("X-User", "u1"), canary.Stable, canary.ByWeight)
	check("staff", req("X-Staff", "yes"), canary.Canary, canary.BySegment)
	check("beta key", req("X-User", "beta-user"), canary.Canary, canary.BySegment)
	check("cookie segment", optIn, canary.Canary, canary.BySegment)
	check("override always", req("X-Canary", "always"), canary.Canary, canary.ByOverride)
	check("override wins over segment", req("X-Canary", "never", "X-Staff", "yes"), canary.Stable, canary.ByOverride)
	check("bad override ignored", req("X-Canary", "maybe", "X-Staff", "yes"), canary.Canary, canary.BySegment)
	_ = s.SetWeight(10000)
	check("full weight", req("X-User", "u1"), canary.Canary, canary.ByWeight)
	check("override never at full weight", req("X-Canary", "Never"), canary.Stable, canary.ByOverride)
	// Halt: segments off, overrides still honoured.
	s.Halt()
	if !s.Halted() || s.Weight() != 0 {
		t.Fatal("Halt did not zero the weight")
	}
	check("staff while halted", req("X-Staff", "yes"), canary.Stable, canary.ByHalt)
	check("override while halted", req("X-Canary", "canary"), canary.Canary, canary.ByOverride)
	_ = s.SetWeight(100)
	check("staff after re-arm", req("X-Staff", "yes"), canary.Canary, canary.BySegment)
}

func TestOverrideSecretAndDisabled(t *testing.T) {
	s := newSplitter(t, canary.Options{Override: canary.Override{Header: "X-Variant", Secret: "s3cret"}})
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Variant", "always")
	if v := s.Route(r); v != canary.Stable {
		t.Error("override honoured without its secret")
	}
	r.Header.Set(canary.DefaultOverrideSecretHeader, "wrong!")
	if v := s.Route(r); v != canary.Stable {
		t.Error("override honoured with a wrong secret")
	}
	r.Header.Set(canary.DefaultOverrideSecretHeader, "s3cret")
	if v := s.Route(r); v != canary.Canary {
		t.Error("override refused with the right secret")
	}
	var seen http.Header
	withTarget := newSplitter(t, canary.Options{Override: canary.Override{Secret: "s3cret"},
		Canary: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Clone() })})
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set(canary.DefaultOverrideHeader, "always")
	r.Header.Set(canary.DefaultOverrideSecretHeader, "s3cret")
	withTarget.ServeHTTP(httptest.NewRecorder(), r)
	if seen == nil || seen.Get(canary.DefaultOverrideSecretHeader) != "" || seen.Get(canary.DefaultOverrideHeader) != "always" {
		t.Errorf("canary target saw headers %v: the secret must be stripped", seen)
	}
	off := newSplitter(t, canary.Options{Override: canary.Override{Disabled: true}})
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Canary", "always")
	if v := off.Route(r); v != canary.Stable {
		t.Error("disabled override honoured")
	}
}

func TestOptionsErrors(t *testing.T) {
	cases := []struct {
		o     canary.Options
		field string
	}{
		{canary.Options{Canary: nopHandler}, "Stable"},
		{canary.Options{Stable: nopHandler}, "Canary"},
		{canary.Options{Stable: nopHandler, Canary: nopHandler, Weight: 10001}, "Weight"},
		{canary.Options{Stable: nopHandler, Canary: nopHandler, Segments: []canary.Segment{{Name: "x"}}}, "Segments[0].Match"},
		{canary.Options{Stable: nopHandler, Canary: nopHandler, Mirror: &canary.MirrorOptions{Weight: 20000}}, "Mirror.Weight"},
		{canary.Options{Stable: nopHandler, Canary: nopHandler, TailQuantile: 1}, "TailQuantile"},
	}
	for _, c := range cases {
		_, err := canary.New(c.o)
		var oe *canary.OptionsError
		if !errors.As(err, &oe) || oe.Field != c.field || !errors.Is(err, canary.ErrInvalidOptions) {
			t.Errorf("want an error on %s, got %v", c.field, err)
		}
	}
	s := newSplitter(t, canary.Options{})
	if err := s.SetWeight(10001); !errors.Is(err, canary.ErrWeight) {
		t.Errorf("SetWeight(10001) = %v", err)
	}
}
