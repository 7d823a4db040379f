package stats

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// exactUpper sums the hypergeometric tail with big rationals: the reference
// for the floating-point recurrence.
func exactUpper(N, K, n, x int64) float64 {
	choose := func(a, b int64) *big.Int {
		if b < 0 || b > a {
			return new(big.Int)
		}
		return new(big.Int).Binomial(a, b)
	}
	num := new(big.Int)
	for k := x; k <= min(n, K); k++ {
		num.Add(num, new(big.Int).Mul(choose(K, k), choose(N-K, n-k)))
	}
	if x <= 0 {
		return 1
	}
	f, _ := new(big.Rat).SetFrac(num, choose(N, n)).Float64()
	return f
}

func TestProportionGreaterFisherTea(t *testing.T) {
	// Fisher's lady tasting tea: 3 of 4 right, one-sided p = 17/70.
	if p := ProportionGreater(3, 4, 1, 4); math.Abs(p-17.0/70) > 1e-12 {
		t.Fatalf("p = %v, want %v", p, 17.0/70)
	}
}

func TestProportionGreaterMatchesExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n1 := r.Int64N(200) + 1
		n2 := r.Int64N(400) + 1
		x1 := r.Int64N(n1 + 1)
		x2 := r.Int64N(n2 + 1)
		got := ProportionGreater(x1, n1, x2, n2)
		want := exactUpper(n1+n2, x1+x2, n1, x1)
		if math.Abs(got-want) > 1e-9*math.Max(1, want) && math.Abs(got-want)/want > 1e-9 {
			t.Fatalf("ProportionGreater(%d,%d,%d,%d) = %v, exact %v", x1, n1, x2, n2, got, want)
		}
	}
}

func TestProportionGreaterTinyPValue(t *testing.T) {
	// 20 of 600 canary errors against 11 of 11400 stable ones.
	got := ProportionGreater(20, 600, 11, 11400)
	want := exactUpper(12000, 31, 600, 20)
	if got <= 0 || math.Abs(got-want)/want > 1e-9 {
		t.Fatalf("p = %v, exact %v", got, want)
	}
	if got > 1e-12 {
		t.Fatalf("p = %v: an obvious regression is not significant", got)
	}
}

func TestProportionGreaterEdges(t *testing.T) {
	for _, c := range []struct {
		x1, n1, x2, n2 int64
		want           float64
	}{
		{0, 0, 0, 0, 1},
		{0, 10, 0, 10, 1},
		{0, 10, 5, 10, 1},
		{10, 10, 0, 10, exactUpper(20, 10, 10, 10)},
		{1, 1, 0, 1000, 1.0 / 1001},
	} {
		if got := ProportionGreater(c.x1, c.n1, c.x2, c.n2); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("ProportionGreater(%d,%d,%d,%d) = %v, want %v", c.x1, c.n1, c.x2, c.n2, got, c.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic for x1 > n1")
		}
	}()
	ProportionGreater(5, 4, 0, 1)
}

// TestProportionGreaterSize checks that under the null the test rejects at
// most alpha of the time, including with rare events where the z-test
// would not.
func TestProportionGreaterSize(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const runs = 20000
	const alpha = 0.01
	rejectExact, rejectZ := 0, 0
	for range runs {
		n1, n2 := int64(600), int64(11400)
		x1, x2 := binomial(r, n1, 0.001), binomial(r, n2, 0.001)
		if ProportionGreater(x1, n1, x2, n2) < alpha {
			rejectExact++
		}
		if NormalUpper(ProportionZ(x1, n1, x2, n2)) < alpha {
			rejectZ++
		}
	}
	rate := float64(rejectExact) / runs
	if rate > alpha {
		t.Errorf("exact test rejected %.4f of null runs at level %v", rate, alpha)
	}
	// The z-test is the cautionary tale that made the exact test the
	// default: with under one expected canary error it is anti-conservative.
	if float64(rejectZ)/runs <= alpha {
		t.Errorf("z-test rejected %.4f, expected above %v in this regime", float64(rejectZ)/runs, alpha)
	}
	t.Logf("null rejection at %v: exact %.4f, z-test %.4f", alpha, rate, float64(rejectZ)/runs)
}

// binomial draws Binomial(n, p) by summing geometric gaps between
// successes: about n*p steps instead of n.
func binomial(r *rand.Rand, n int64, p float64) int64 {
	var x, at int64
	lq := math.Log1p(-p)
	for {
		at += int64(math.Log(1-r.Float64())/lq) + 1
		if at > n {
			return x
		}
		x++
	}
}

func TestProportionZ(t *testing.T) {
	if z := ProportionZ(20, 100, 10, 100); math.Abs(z-0.1/math.Sqrt(0.15*0.85*0.02)) > 1e-12 {
		t.Errorf("z = %v", z)
	}
	if ProportionZ(0, 0, 1, 2) != 0 || ProportionZ(0, 5, 0, 5) != 0 {
		t.Error("degenerate inputs give a non-zero z")
	}
}

// exactBinomialUpper sums the binomial tail with big rationals.
func exactBinomialUpper(x, n int64, p *big.Rat) float64 {
	sum := new(big.Rat)
	q := new(big.Rat).Sub(big.NewRat(1, 1), p)
	for k := x; k <= n; k++ {
		t := new(big.Rat).SetInt(new(big.Int).Binomial(n, k))
		for range k {
			t.Mul(t, p)
		}
		for range n - k {
			t.Mul(t, q)
		}
		sum.Add(sum, t)
	}
	f, _ := sum.Float64()
	return f
}

func TestBinomialGreaterMatchesExact(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		n := r.Int64N(120) + 1
		x := r.Int64N(n + 1)
		num := r.Int64N(99) + 1
		p := big.NewRat(num, 100)
		pf, _ := p.Float64()
		got := BinomialGreater(x, n, pf)
		want := 1.0
		if x > 0 {
			want = exactBinomialUpper(x, n, p)
		}
		if math.Abs(got-want) > 1e-9*math.Max(want, 1e-300) && math.Abs(got-want) > 1e-12 {
			t.Fatalf("BinomialGreater(%d, %d, %v) = %v, exact %v", x, n, pf, got, want)
		}
	}
}

func TestBinomialGreaterEdges(t *testing.T) {
	for _, c := range []struct {
		x, n int64
		p    float64
		want float64
	}{
		{0, 10, 0.3, 1}, {11, 10, 0.3, 0}, {1, 10, 0, 0}, {10, 10, 1, 1},
		{3, 3, 0.5, 0.125}, {1, 1, 0.05, 0.05},
	} {
		if got := BinomialGreater(c.x, c.n, c.p); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("BinomialGreater(%d, %d, %v) = %v, want %v", c.x, c.n, c.p, got, c.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic for p > 1")
		}
	}()
	BinomialGreater(1, 2, 1.5)
}

// TestBinomialGreaterSize checks the rate test under its null: rare events
// in a small and a large group at the same rate.
func TestBinomialGreaterSize(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const runs = 20000
	const alpha = 0.01
	reject := 0
	for range runs {
		n1, n2 := int64(600), int64(11400)
		x1, x2 := binomial(r, n1, 0.01), binomial(r, n2, 0.01)
		p := float64(n1) / float64(n1+n2)
		if BinomialGreater(x1, x1+x2, p) < alpha {
			reject++
		}
	}
	if rate := float64(reject) / runs; rate > alpha {
		t.Errorf("rejected %.4f of null runs at level %v", rate, alpha)
	}
}

func TestSpendingSumsToAlpha(t *testing.T) {
	for _, shape := range []Shape{Pocock, OBrienFleming} {
		s := Spending{Alpha: 0.01, Looks: 18, Shape: shape}
		var planned, total float64
		prev := math.Inf(1)
		for k := 1; k <= 100000; k++ {
			l := s.Level(k)
			if l < 0 {
				t.Fatalf("%v: negative level at look %d", shape, k)
			}
			if k <= s.Looks {
				planned += l
			} else if l > prev {
				t.Fatalf("%v: reserve level grows at look %d", shape, k)
			} else {
				prev = l
			}
			total += l
		}
		if math.Abs(planned-0.008) > 1e-12 {
			t.Errorf("%v: planned looks spend %v, want 0.008", shape, planned)
		}
		if total > 0.01 || total < 0.00999 {
			t.Errorf("%v: all looks spend %v, want just under 0.01", shape, total)
		}
	}
	if (Spending{}).Level(1) != 0 || (Spending{Alpha: 1}).Level(0) != 0 {
		t.Error("zero spending or look 0 has a non-zero level")
	}
	if l := (Spending{Alpha: 0.05, Reserve: -1}).Level(2); l != 0 {
		t.Errorf("no reserve: look past the plan gets %v", l)
	}
	if l := (Spending{Alpha: 0.05, Reserve: -1}).Level(1); math.Abs(l-0.05) > 1e-15 {
		t.Errorf("single look, no reserve: level %v, want 0.05", l)
	}
}

func TestSpendingShapes(t *testing.T) {
	p := Spending{Alpha: 0.01, Looks: 10, Shape: Pocock}
	o := Spending{Alpha: 0.01, Looks: 10, Shape: OBrienFleming}
	if !(o.Level(1) < p.Level(1)/100) {
		t.Errorf("O'Brien-Fleming first look %v not far below Pocock %v", o.Level(1), p.Level(1))
	}
	if !(o.Level(10) > p.Level(10)) {
		t.Errorf("O'Brien-Fleming last look %v not above Pocock %v", o.Level(10), p.Level(10))
	}
	for k := 2; k <= 10; k++ {
		if p.Level(k) > p.Level(k-1) {
			t.Errorf("Pocock level rises at look %d", k)
		}
	}
	if Pocock.String() != "pocock" || OBrienFleming.String() != "obrien-fleming" || Shape(9).String() != "Shape(9)" {
		t.Error("shape names")
	}
}

func TestNormal(t *testing.T) {
	for _, z := range []float64{-3, -1, 0, 1.6448536269514722, 2.326347874040841, 5, 6} {
		p := NormalUpper(z)
		if back := NormalUpperInv(p); math.Abs(back-z) > 1e-9 {
			t.Errorf("inverse of upper(%v) = %v", z, back)
		}
	}
	if math.Abs(NormalUpper(1.6448536269514722)-0.05) > 1e-12 {
		t.Error("upper(1.645) != 0.05")
	}
}

func BenchmarkProportionGreater(b *testing.B) {
	for b.Loop() {
		_ = ProportionGreater(30, 6000, 400, 114000)
	}
}

func BenchmarkBinomialGreater(b *testing.B) {
	for b.Loop() {
		_ = BinomialGreater(30, 430, 0.05)
	}
}

func TestProportionGreaterBest(t *testing.T) {
	// 3 of 20 against 5 of 400: the most extreme split of the 8 errors
	// puts all of them among the first 20.
	p, best := ProportionGreaterBest(3, 20, 5, 400)
	if want := ProportionGreater(3, 20, 5, 400); p != want {
		t.Errorf("p = %g, want ProportionGreater's %g", p, want)
	}
	if want := ProportionGreater(8, 20, 0, 400); best != want || best > p {
		t.Errorf("best = %g, want %g (and at most p = %g)", best, want, p)
	}
	// More errors than first trials: only n1 of them fit.
	if _, best := ProportionGreaterBest(1, 2, 9, 30); best != ProportionGreater(2, 2, 8, 30) {
		t.Errorf("best with more errors than trials = %g", best)
	}
}

func TestRateVarianceNeverZero(t *testing.T) {
	if v := RateVariance(0, 100); v <= 0 || math.Abs(v-(0.5/101)*(1-0.5/101)/100) > 1e-15 {
		t.Errorf("RateVariance(0, 100) = %g", v)
	}
}
