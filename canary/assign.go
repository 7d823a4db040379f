package canary

import (
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"
)

// KeyOptions says where the splitter finds the key that makes assignment
// sticky: a request with a key goes to the canary if and only if the key's
// bucket (out of 10,000) is below the weight. Sources are tried in field
// order; the zero value has no source, so every request is split at random.
type KeyOptions struct {
	// Func extracts a key, typically a user ID set by authentication
	// middleware in the request context. An empty result means no key.
	Func func(r *http.Request) string
	// Header names a request header holding the key (e.g. "X-User-ID").
	Header string
	// Cookie names a cookie holding the key (e.g. a session cookie).
	Cookie string
	// AssignCookie, when set, names a cookie the splitter sets with a
	// random key on a response to a request that carries no key (it is
	// also read as a key source, last): a browser then stays on the same
	// variant. Empty means requests without a key are split at random.
	AssignCookie string
	// AssignMaxAge is the lifetime of the assigned cookie; zero means
	// DefaultAssignMaxAge.
	AssignMaxAge int
}

// DefaultAssignMaxAge is the lifetime, in seconds, of an assigned key
// cookie: 30 days.
const DefaultAssignMaxAge = 30 * 24 * 3600

// Segment sends the requests it matches to the canary whatever the weight
// (staff, a beta group). The zero value matches nothing.
type Segment struct {
	// Name says who the segment is, for logs and status.
	Name string
	// Match reports whether the request belongs to the segment; key is
	// the sticky key found for it ("" if none), so attribute segments
	// can match user IDs without parsing the request again.
	Match func(r *http.Request, key string) bool
}

// HeaderSegment matches requests whose header has one of the values
// (exact match).
func HeaderSegment(name, header string, values ...string) Segment {
	header = http.CanonicalHeaderKey(header)
	vals := slices.Clone(values)
	return Segment{Name: name, Match: func(r *http.Request, _ string) bool {
		for _, v := range r.Header[header] {
			if slices.Contains(vals, v) {
				return true
			}
		}
		return false
	}}
}

// CookieSegment matches requests with a cookie whose value is one of the
// values.
func CookieSegment(name, cookie string, values ...string) Segment {
	vals := slices.Clone(values)
	return Segment{Name: name, Match: func(r *http.Request, _ string) bool {
		c, err := r.Cookie(cookie)
		return err == nil && slices.Contains(vals, c.Value)
	}}
}

// KeySegment matches requests whose sticky key is one of the keys (user IDs
// of a beta group, say).
func KeySegment(name string, keys ...string) Segment {
	set := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		set[k] = struct{}{}
	}
	return Segment{Name: name, Match: func(_ *http.Request, key string) bool {
		_, ok := set[key]
		return key != "" && ok
	}}
}

// Override lets a request choose its variant with a header, for testing a
// canary by hand: "always" (or "canary") and "never" (or "stable"); any
// other value is ignored. The zero value enables the header X-Canary with
// no secret: switch it off (Disabled) or require a secret on any service
// reachable by untrusted clients.
type Override struct {
	// Disabled ignores the override header.
	Disabled bool
	// Header names the override header; empty means DefaultOverrideHeader.
	Header string
	// Secret, when set, makes the override count only on requests whose
	// SecretHeader carries exactly this value (compared in constant time).
	Secret string
	// SecretHeader names the header carrying the secret; empty means
	// DefaultOverrideSecretHeader.
	SecretHeader string
}

// Defaults for Override.
const (
	DefaultOverrideHeader       = "X-Canary"
	DefaultOverrideSecretHeader = "X-Canary-Secret"
)

// Reason says why a request went where it did. The zero value is ByWeight.
type Reason uint8

// Reasons, in the order of precedence the splitter applies.
const (
	ByWeight   Reason = iota // the key's bucket (or a random draw) against the weight
	ByOverride               // the override header
	ByHalt                   // the canary was halted (aborted): stable for all
	BySegment                // a segment matched
	ByRandom                 // no key: a random draw against the weight
)

// String names the reason.
func (r Reason) String() string {
	switch r {
	case ByWeight:
		return "weight"
	case ByOverride:
		return "override"
	case ByHalt:
		return "halted"
	case BySegment:
		return "segment"
	case ByRandom:
		return "random"
	}
	return "unknown"
}

type overrideRule struct {
	header       string
	secret       []byte
	secretHeader string
}

func newOverrideRule(o Override) *overrideRule {
	if o.Disabled {
		return nil
	}
	r := &overrideRule{
		header:       http.CanonicalHeaderKey(o.Header),
		secretHeader: http.CanonicalHeaderKey(o.SecretHeader),
	}
	if o.Header == "" {
		r.header = DefaultOverrideHeader
	}
	if o.SecretHeader == "" {
		r.secretHeader = DefaultOverrideSecretHeader
	}
	if o.Secret != "" {
		r.secret = []byte(o.Secret)
	}
	return r
}

// match returns the variant the request asks for, if it may ask.
func (o *overrideRule) match(r *http.Request) (Variant, bool) {
	vals := r.Header[o.header]
	if len(vals) == 0 {
		return 0, false
	}
	var v Variant
	switch strings.ToLower(strings.TrimSpace(vals[0])) {
	case "always", "canary":
		v = Canary
	case "never", "stable":
		v = Stable
	default:
		return 0, false
	}
	if o.secret != nil {
		got := r.Header[o.secretHeader]
		// ConstantTimeCompare leaks only the length, which a secret of
		// a fixed format does not depend on.
		if len(got) == 0 || subtle.ConstantTimeCompare([]byte(got[0]), o.secret) != 1 {
			return 0, false
		}
	}
	return v, true
}
