package bucket

import (
	"encoding/binary"
	"math/bits"
)

// Murmur3 x86_32 constants.
const (
	c1 = 0xcc9e2d51
	c2 = 0x1b873593
)

// stackKey is the longest salt+key that Hash copies to the stack; longer
// keys are streamed byte by byte at a small extra cost.
const stackKey = 256

// Hash returns MurmurHash3 x86_32 (seed 0) of salt followed by key, as if
// the two were concatenated, without allocating.
func Hash(salt, key string) uint32 {
	n := len(salt) + len(key)
	if n <= stackKey {
		var buf [stackKey]byte
		copy(buf[:], salt)
		copy(buf[len(salt):], key)
		return sum(buf[:n])
	}
	return sumStream(salt, key)
}

// Sum returns MurmurHash3 x86_32 (seed 0) of b.
func Sum(b []byte) uint32 { return sum(b) }

func sum(b []byte) uint32 {
	var h uint32
	n := len(b)
	for len(b) >= 4 {
		h = mixBlock(h, binary.LittleEndian.Uint32(b))
		b = b[4:]
	}
	var k uint32
	switch len(b) {
	case 3:
		k ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		k ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		k ^= uint32(b[0])
		h ^= mixK(k)
	}
	return finalize(h, n)
}

// sumStream hashes salt+key when the pair is too long for the stack buffer.
func sumStream(salt, key string) uint32 {
	n := len(salt) + len(key)
	at := func(i int) uint32 {
		if i < len(salt) {
			return uint32(salt[i])
		}
		return uint32(key[i-len(salt)])
	}
	var h uint32
	i := 0
	for ; i+4 <= n; i += 4 {
		h = mixBlock(h, at(i)|at(i+1)<<8|at(i+2)<<16|at(i+3)<<24)
	}
	if rem := n - i; rem > 0 {
		var k uint32
		for j := rem - 1; j >= 0; j-- {
			k = k<<8 | at(i+j)
		}
		h ^= mixK(k)
	}
	return finalize(h, n)
}

func mixK(k uint32) uint32 {
	k *= c1
	k = bits.RotateLeft32(k, 15)
	return k * c2
}

func mixBlock(h, k uint32) uint32 {
	h ^= mixK(k)
	h = bits.RotateLeft32(h, 13)
	return h*5 + 0xe6546b64
}

func finalize(h uint32, n int) uint32 {
	h ^= uint32(n)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// Of maps a hash onto a bucket in [0, total). Of returns 0 when total is 0.
func Of(h, total uint32) uint32 {
	return uint32((uint64(h) * uint64(total)) >> 32)
}

// Pick returns the index of the weight whose cumulative range holds the
// bucket of h, with total the sum of weights (any size); it returns -1 when every
// weight is zero. The caller keeps weights in declaration order, which is
// what makes raising one weight move keys only into it.
func Pick(h uint32, weights []uint32) int {
	var total uint64
	for _, w := range weights {
		total += uint64(w)
	}
	if total == 0 {
		return -1
	}
	// The 128-bit product keeps the mapping exact for any total.
	hi, lo := bits.Mul64(uint64(h), total)
	b := hi<<32 | lo>>32
	var end uint64
	for i, w := range weights {
		end += uint64(w)
		if b < end {
			return i
		}
	}
	return len(weights) - 1 // unreachable: b < total
}

// In reports whether the key's bucket falls below share out of total: the
// two-variant case used for a canary weight or a single percentage.
func In(h, share, total uint32) bool {
	return Of(h, total) < share
}
