// Package bucket is the sticky bucketing shared by flags (percentage rollout)
// and canary (traffic weight), so that a user who is in at 5% is still in at
// 10%, whichever of the two put them there.
//
// # Algorithm
//
// The bucketing key is the salt followed directly by the subject's key (no
// separator): for a flag the salt defaults to the flag key and the subject to
// the targeting key, exactly as flagd forms "flagKey + targetingKey". The key's
// bytes are hashed with 32-bit MurmurHash3 (x86_32, seed 0) and the hash h is
// mapped onto [0, total) by
//
//	bucket = (uint64(h) * uint64(total)) >> 32
//
// which is flagd's high-resolution fractional scheme: every bucket receives
// either floor(2^32/total) or ceil(2^32/total) hash values, so the bias is at
// most one part in 2^32/total, and no modulo bias or float rounding enters.
// Variants own consecutive ranges of buckets in the order they are declared;
// a key falls into the variant whose range holds its bucket.
//
// # Guarantees
//
//   - A key always gets the same bucket for the same salt and total.
//   - When the weights change but their total does not, a key moves only
//     between variants whose ranges changed under it. With two variants
//     [in, out], raising "in" moves keys from out to in and never back.
//   - Nothing here allocates: Hash copies short keys to a stack buffer and
//     streams longer ones.
//
// The golden vectors in the tests freeze the algorithm: changing them moves
// users between variants in every running service and must never happen
// silently.
package bucket
