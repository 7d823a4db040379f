package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSequentialFirstLook: one look is the fixed-sample test.
func TestSequentialFirstLook(t *testing.T) {
	var s Sequential
	c, ok := s.Next(10, 0.01)
	if !ok || math.Abs(c-NormalUpperInv(0.01)) > 1e-12 {
		t.Fatalf("first look %v %v, want %v", c, ok, NormalUpperInv(0.01))
	}
	if _, ok := s.Next(10, 0.01); ok {
		t.Fatal("a look without more information was accepted")
	}
}

// TestSequentialPocockConstant: with equal steps of information and the
// crossing probabilities of Pocock's constant boundary (one-sided, 5
// looks, overall 2.5%: 2.413 in Jennison and Turnbull's table 2.1, where
// the two-sided lower boundary adds nothing noticeable), the recursion
// gives the constant back.
func TestSequentialPocockConstant(t *testing.T) {
	const cP = 2.413
	// Crossing probabilities of the constant boundary, by Monte Carlo
	// with a fixed seed, then fed to Next.
	r := rand.New(rand.NewPCG(1, 2))
	const paths = 400000
	var first [5]float64
	for range paths {
		s := 0.0
		for k := range 5 {
			s += r.NormFloat64()
			if s/math.Sqrt(float64(k+1)) >= cP {
				first[k]++
				break
			}
		}
	}
	total := 0.0
	var seq Sequential
	for k := range 5 {
		first[k] /= paths
		total += first[k]
		c, ok := seq.Next(float64(k+1), first[k])
		if !ok {
			t.Fatal("look refused")
		}
		if math.Abs(c-cP) > 0.02 {
			t.Errorf("look %d: boundary %.3f, want %.3f", k+1, c, cP)
		}
	}
	if math.Abs(total-0.025) > 0.002 {
		t.Errorf("constant boundary %.3f crosses with probability %.4f, want 0.025", cP, total)
	}
}

// TestSequentialSize: boundaries from a spending schedule over unequal
// information steps keep the overall rejection rate of simulated null
// paths at the total spent, and above the union bound's per-look levels.
func TestSequentialSize(t *testing.T) {
	infos := []float64{1, 1.5, 3, 3.2, 6, 9, 9.5, 14}
	sp := Spending{Alpha: 0.01, Looks: len(infos), Reserve: -1}
	var seq Sequential
	var bounds []float64
	for k, info := range infos {
		c, ok := seq.Next(info, sp.Level(k+1))
		if !ok {
			t.Fatal("look refused")
		}
		if k > 0 && c >= NormalUpperInv(sp.Level(k+1)) {
			t.Errorf("look %d: boundary %.3f not below the union bound's %.3f", k+1, c, NormalUpperInv(sp.Level(k+1)))
		}
		bounds = append(bounds, c)
	}
	r := rand.New(rand.NewPCG(3, 4))
	const paths = 1000000
	rejected := 0
	for range paths {
		s, prev := 0.0, 0.0
		for k, info := range infos {
			s += math.Sqrt(info-prev) * r.NormFloat64()
			prev = info
			if s/math.Sqrt(info) >= bounds[k] {
				rejected++
				break
			}
		}
	}
	// 1e6 paths: the standard error of a 1% rate is 0.01 points.
	if got := float64(rejected) / paths; math.Abs(got-0.01) > 0.0004 {
		t.Errorf("null paths rejected %.4f, want 0.0100", got)
	}
}

// BenchmarkSequentialNext: one look after the first (the recursion's
// numerical integration), as the latency test makes every check.
func BenchmarkSequentialNext(b *testing.B) {
	for b.Loop() {
		var s Sequential
		s.Next(100, 1e-4)
		s.Next(200, 1e-4)
	}
}
