package bucket

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/murmur3"
)

// TestHashMatchesReference checks the allocation-free hash against an
// independent MurmurHash3 implementation on every length around the block
// size and the stack-buffer limit, and on every split point of salt and key.
func TestHashMatchesReference(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < stackKey+9; i++ {
		sb.WriteByte(byte('a' + i*7%26))
	}
	full := sb.String()
	for n := 0; n <= len(full); n++ {
		s := full[:n]
		want := murmur3.StringSum32(s)
		for split := 0; split <= n; split++ {
			if got := Hash(s[:split], s[split:]); got != want {
				t.Fatalf("Hash(%q, %q) = %#x, want %#x", s[:split], s[split:], got, want)
			}
		}
		if got := Sum([]byte(s)); got != want {
			t.Fatalf("Sum(len %d) = %#x, want %#x", n, got, want)
		}
	}
}

// TestGolden freezes the algorithm: each row is a salt, a key, the hash,
// and the bucket out of 100 and out of 10,000. Changing a row moves users.
func TestGolden(t *testing.T) {
	golden := []struct {
		salt, key  string
		hash       uint32
		pct, basis uint32
	}{
		{"", "", 0x00000000, 0, 0},
		{"", "a", 0x3c2569b2, 23, 2349},
		{"flag", "user-1", 0xb4e1381d, 70, 7065},
		{"new-checkout", "alice@example.com", 0xb9e88e56, 72, 7262},
		{"canary", "42", 0xc4746b92, 76, 7674},
		{"fractional-flag-shorthand", "jon@company.com", 0x24d687a4, 14, 1438},
		{"fractional-flag-shorthand", "jane@company.com", 0x8a0bf0a6, 53, 5392},
	}
	for _, g := range golden {
		h := Hash(g.salt, g.key)
		if h != g.hash || Of(h, 100) != g.pct || Of(h, 10000) != g.basis {
			t.Errorf("Hash(%q, %q) = %#x, buckets %d/100 %d/10000; golden %#x, %d, %d",
				g.salt, g.key, h, Of(h, 100), Of(h, 10000), g.hash, g.pct, g.basis)
		}
	}
}

// TestFlagdCompatible checks the published flagd fractional vectors for a
// flag that splits "heads" and "tails" 50/50 on flagKey+targetingKey.
func TestFlagdCompatible(t *testing.T) {
	variants := []string{"heads", "tails"}
	for key, want := range map[string]string{
		"jon@company.com":  "heads",
		"jane@company.com": "tails",
	} {
		got := variants[Pick(Hash("fractional-flag-shorthand", key), []uint32{50, 50})]
		if got != want {
			t.Errorf("%s: got %s, want %s", key, got, want)
		}
	}
}

func TestPickEdges(t *testing.T) {
	if got := Pick(123, nil); got != -1 {
		t.Errorf("Pick with no weights = %d, want -1", got)
	}
	if got := Pick(123, []uint32{0, 0}); got != -1 {
		t.Errorf("Pick with zero weights = %d, want -1", got)
	}
	if got := Pick(0xffffffff, []uint32{1, 0}); got != 0 {
		t.Errorf("Pick(max, [1 0]) = %d, want 0", got)
	}
	// total = 2^33-1: the last hash value lands on bucket 2^33-3, inside
	// the second range [2^32-1, 2^33-2).
	if got := Pick(0xffffffff, []uint32{0xffffffff, 0xffffffff, 1}); got != 1 {
		t.Errorf("Pick with total above 2^32 = %d, want 1", got)
	}
	if got := Pick(0, []uint32{0, 5}); got != 1 {
		t.Errorf("Pick skips a zero first weight: got %d, want 1", got)
	}
	if Of(0xffffffff, 10000) != 9999 || Of(0, 10000) != 0 || Of(5, 0) != 0 {
		t.Error("Of does not map onto [0, total)")
	}
}

const million = 1_000_000

// TestExactPartition checks that the mapping itself has no bias: bucket b
// of total owns the hash values from ceil(b*2^32/total) on, so every bucket
// owns floor(2^32/total) or ceil(2^32/total) of them.
func TestExactPartition(t *testing.T) {
	for _, total := range []uint32{1, 2, 3, 7, 100, 10000, 65537} {
		lo := uint64(1<<32) / uint64(total)
		start := func(b uint64) uint64 { return (b<<32 + uint64(total) - 1) / uint64(total) }
		for b := uint64(0); b < uint64(total); b++ {
			first, next := start(b), start(b+1)
			if n := next - first; n != lo && n != lo+1 {
				t.Fatalf("total %d: bucket %d owns %d hash values", total, b, n)
			}
			if Of(uint32(first), total) != uint32(b) || (first > 0 && Of(uint32(first-1), total) != uint32(b-1)) {
				t.Fatalf("total %d: bucket %d does not start at hash %d", total, b, first)
			}
		}
	}
}

// closeTo reports whether an observed share (in percent) of n keys is
// within 0.1 percentage points of the expected one, or within four
// standard deviations of sampling noise where that is wider: at 10^6 keys
// and a 50% share one standard deviation is already 0.05 points, so 0.1 is
// a 2-sigma bound that no hash function can promise for every key set.
func closeTo(got, want float64, n int) bool {
	tol := 0.1
	if s := 4 * 100 * math.Sqrt(want/100*(1-want/100)/float64(n)); s > tol {
		tol = s
	}
	return math.Abs(got-want) <= tol
}

func keys(n int) []string {
	k := make([]string, n)
	for i := range k {
		k[i] = "user-" + strconv.Itoa(i)
	}
	return k
}

// TestDistribution checks over 10^6 keys that each variant gets its share
// to within 0.1 percentage points.
func TestDistribution(t *testing.T) {
	if testing.Short() {
		t.Skip("10^6 keys")
	}
	weights := []uint32{10, 20, 30, 40}
	counts := make([]int, len(weights))
	for _, k := range keys(million) {
		counts[Pick(Hash("dist", k), weights)]++
	}
	for i, c := range counts {
		share := float64(c) / million * 100
		if !closeTo(share, float64(weights[i]), million) {
			t.Errorf("variant %d: %.3f%% of keys, want %d%%", i, share, weights[i])
		}
	}
}

// TestMonotoneRamp checks over 10^6 keys that raising a percentage only
// moves keys into the variant, and that each key's bucket is stable.
func TestMonotoneRamp(t *testing.T) {
	if testing.Short() {
		t.Skip("10^6 keys")
	}
	ks := keys(million)
	in := make([]bool, len(ks))
	steps := []uint32{1, 5, 10, 25, 50, 99, 100}
	for _, p := range steps {
		n := 0
		for i, k := range ks {
			h := Hash("ramp", k)
			now := Pick(h, []uint32{p, 100 - p}) == 0
			if now != In(h, p, 100) {
				t.Fatalf("Pick and In disagree for %s at %d%%", k, p)
			}
			if in[i] && !now {
				t.Fatalf("%s left the variant when the share rose to %d%%", k, p)
			}
			in[i] = now
			if now {
				n++
			}
		}
		if !closeTo(float64(n)/million*100, float64(p), million) {
			t.Errorf("at %d%%: %.3f%% of keys are in", p, float64(n)/million*100)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	long := strings.Repeat("x", 300)
	allocs := testing.AllocsPerRun(100, func() {
		_ = Pick(Hash("flag", "user-12345"), []uint32{5, 95})
		_ = Hash(long, "k")
	})
	if allocs != 0 {
		t.Errorf("%v allocs per run, want 0", allocs)
	}
}

func BenchmarkHash(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = Hash("new-checkout", "alice@example.com")
	}
}

func BenchmarkPick(b *testing.B) {
	w := []uint32{10, 20, 30, 40}
	b.ReportAllocs()
	for b.Loop() {
		_ = Pick(Hash("new-checkout", "alice@example.com"), w)
	}
}
