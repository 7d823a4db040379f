package flags

import (
	"regexp"
	"sync/atomic"
	"time"
)

// Reason explains why an evaluation returned its value; the values are
// OpenFeature's. The zero Reason is empty and never returned.
type Reason string

// Reasons.
const (
	ReasonStatic   Reason = "STATIC"          // the flag has no targeting: it serves one variant to all
	ReasonTargeted Reason = "TARGETING_MATCH" // a rule matched
	ReasonSplit    Reason = "SPLIT"           // the fallthrough is a percentage rollout
	ReasonDisabled Reason = "DISABLED"        // the flag is turned off
	ReasonDefault  Reason = "DEFAULT"         // no rule matched, a prerequisite failed, or no bucketing key
	ReasonError    Reason = "ERROR"           // see the error code; the caller's default is returned
)

// reason indexes per-reason counters; the first numCounted have counters
// per variant, reasonError is counted per flag.
type reason uint8

const (
	rStatic reason = iota
	rTargeted
	rSplit
	rDisabled
	rDefault
	numCounted
	rError = numCounted
)

var reasonNames = [...]Reason{ReasonStatic, ReasonTargeted, ReasonSplit, ReasonDisabled, ReasonDefault, ReasonError}

// percentTotal is the bucket count behind percentages: 0.001% resolution.
// A share of p% is p*1000 buckets out of 100,000, the same cut as a weight of
// p out of 100 (both compare h against p/100 * 2^32), so flags and canary
// agree on who is in.
const percentTotal = 100_000

// snapshot is an immutable compiled configuration; Store swaps it whole.
type snapshot struct {
	flags    map[string]*cflag
	segments map[string]*csegment
	version  uint64
	loadedAt time.Time
	dropped  []droppedOverride
}

// droppedOverride is an override that did not apply to a new
// configuration: the Store's own (source empty), which the Store drops,
// or a source's, skipped while that source stays as it is.
type droppedOverride struct {
	flag   string
	source string
	err    error
}

type cvariant struct {
	name string
	b    bool
	s    string
	i    int64
	f    float64
	obj  any // the value as defined
}

type serveKind uint8

const (
	serveVariant serveKind = iota
	serveRollout
	serveProgressive
)

type cserve struct {
	kind    serveKind
	variant int
	weights []uint32
	widx    []int
	prog    *cprog
}

type cprog struct {
	variant, otherwise int
	at                 []int64   // unix nanos, increasing
	share              []float64 // buckets out of percentTotal
	linear             bool
}

// shareAt is the number of buckets (out of percentTotal) in at time now.
func (p *cprog) shareAt(now int64) uint32 {
	if len(p.at) == 0 || now < p.at[0] {
		return 0
	}
	i := 0
	for i+1 < len(p.at) && p.at[i+1] <= now {
		i++
	}
	s := p.share[i]
	if p.linear && i+1 < len(p.at) {
		frac := float64(now-p.at[i]) / float64(p.at[i+1]-p.at[i])
		s += (p.share[i+1] - s) * frac
	}
	return uint32(s)
}

type cprereq struct {
	key    string
	flag   *cflag
	accept []bool // indexed by the prerequisite's variant index
}

type crule struct {
	name  string
	cond  *cnode // nil matches all
	serve cserve
}

type cflag struct {
	key        string
	typ        Type
	variants   []cvariant
	def, off   int
	disabled   bool
	salt       string
	bucketBy   string
	prereqs    []cprereq
	rules      []crule
	serve      cserve
	fallReason reason
	meta       map[string]any
	source     string
	usage      *usage
	counters   []*vcounters // per variant, shared with usage across reloads
	override   Override
}

func (f *cflag) variantIndex(name string) int {
	for i := range f.variants {
		if f.variants[i].name == name {
			return i
		}
	}
	return -1
}

// vcounters counts one variant's evaluations by reason. It has one line
// per shard (a power of two, set from GOMAXPROCS) so that cores evaluating
// the same flag mostly write to different cache lines.
type vcounters struct {
	lines []counterLine
}

type counterLine struct {
	n [numCounted]atomic.Uint64
	_ [8 - numCounted]uint64 // pad to a 64-byte line
}

func (v *vcounters) total(r reason) uint64 {
	var n uint64
	for i := range v.lines {
		n += v.lines[i].n[r].Load()
	}
	return n
}

type namedCounters struct {
	variant string
	c       *vcounters
}

// usage outlives snapshots: a reload keeps a flag's counts.
type usage struct {
	last     atomic.Int64 // unix seconds of the last evaluation; 0 never
	errors   atomic.Uint64
	since    time.Time       // when the flag was first loaded
	variants []namedCounters // guarded by Store.mu
}

// opKind enumerates compiled condition nodes.
type opKind uint8

const (
	opAll opKind = iota
	opAny
	opNot
	opSegment
	opEquals
	opNotEquals
	opIn
	opNotIn
	opContains
	opStartsWith
	opEndsWith
	opMatches
	opLT
	opLTE
	opGT
	opGTE
	opSemverEq
	opSemverLT
	opSemverLTE
	opSemverGT
	opSemverGTE
	opBefore
	opAfter
	opExists
)

type valueKind uint8

const (
	vString valueKind = iota
	vNum
	vBool
)

// cnode is a compiled condition. It is a concrete type rather than an
// interface so that the evaluation context, passed by pointer, stays on the
// caller's stack: arguments of interface method calls escape to the heap.
// It holds what the common operators need in 80 bytes; the rest is in x.
type cnode struct {
	op    opKind
	vkind valueKind
	b     bool
	attr  string
	s     string
	n     float64
	kids  []cnode
	x     *cnodeExt
}

type cnodeExt struct {
	t       int64 // before/after operand, unix nanoseconds
	sv      semver
	re      *regexp.Regexp
	strList []string            // in/not_in string operands, when few
	strSet  map[string]struct{} // in/not_in string operands, when many
	nums    map[float64]struct{}
	seg     *csegment
}

// smallSet is the list length up to which in/not_in scans a slice: for a
// handful of short strings that is faster and far smaller than a map.
const smallSet = 8

type csegment struct {
	name     string
	keys     map[string]struct{}
	excluded map[string]struct{}
	cond     *cnode
}
