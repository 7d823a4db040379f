package flags

import "time"

// Config is a complete set of flag and segment definitions: what one source
// (code, or the files of one FileSource) contributes to a Store. The zero
// Config defines nothing.
type Config struct {
	// Flags maps a flag key to its definition. Nil means no flags.
	Flags map[string]Flag
	// Segments maps a segment name to its definition; rules of any flag
	// from any source may refer to it. Nil means no segments.
	Segments map[string]Segment
	// Overrides maps a flag key to a run-time change applied on top of
	// that flag's definition, whichever source defines it: how a fleet's
	// document carries the kill switches and percentages set through any
	// host (see the package documentation). A flag may be overridden by
	// one source only; the Store's own changes (Store.SetDisabled,
	// Store.SetPercent) win over it, field by field. Nil means none.
	Overrides map[string]Override
}

// Type is the type of a flag's values. The zero Type is TypeBool.
type Type uint8

// Flag value types.
const (
	TypeBool   Type = iota // Go bool; JSON true/false
	TypeString             // Go string
	TypeInt                // Go int64; a JSON number without fraction
	TypeFloat              // Go float64; any JSON number
	TypeObject             // any JSON value (map[string]any, []any, ...), served as decoded
)

var typeNames = [...]string{"bool", "string", "int", "float", "object"}

// String returns the schema name of the type ("bool", "string", ...).
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "invalid"
}

// Flag defines one flag. The zero Flag is invalid: it has no variants.
type Flag struct {
	// Type of the variants' values. Zero means TypeBool.
	Type Type
	// Variants maps variant names to values of Type. At least one is required.
	Variants map[string]any
	// Default names the variant served when nothing else applies: no rule
	// matched and Serve is empty, a prerequisite is not met, or the
	// bucketing attribute is missing. Required.
	Default string
	// Disabled turns the flag off (kill switch): it serves OffVariant with
	// reason DISABLED and evaluates nothing else.
	Disabled bool
	// OffVariant is served while Disabled. Empty means Default.
	OffVariant string
	// Salt is prefixed to the bucketing value before hashing. Empty means
	// the flag key, which is what flagd does, so that the same user gets the
	// same bucket here and in flagd-based SDKs.
	Salt string
	// BucketBy names the context attribute that percentage rollouts hash.
	// Empty means the targeting key.
	BucketBy string
	// Prerequisites must all hold, in order, before rules are evaluated;
	// otherwise the flag serves Default with reason DEFAULT.
	Prerequisites []Prerequisite
	// Rules are evaluated in order; the first whose condition matches
	// decides the variant (reason TARGETING_MATCH).
	Rules []Rule
	// Serve decides when no rule matched. The zero Serve serves Default
	// (reason STATIC for a flag without rules and prerequisites, DEFAULT
	// otherwise).
	Serve Serve
	// Metadata is returned with every evaluation of the flag (OpenFeature
	// flag metadata). Values should be bool, string, int64 or float64.
	Metadata map[string]any

	line int    // where the flag's definition starts in its file; 0 from code
	file string // the file that defined it; empty from code
}

// Prerequisite requires another flag to serve one of Variants. The zero
// Prerequisite is invalid: it names no flag.
type Prerequisite struct {
	// Flag is the key of the prerequisite flag. Required; cycles are rejected.
	Flag string
	// Variants lists the acceptable variants of Flag. Required.
	Variants []string

	line int
}

// Rule serves a variant or a split to the subjects its condition matches.
// The zero Rule is invalid: it serves nothing.
type Rule struct {
	// Name appears in logs and in the admin listing. Empty is allowed.
	Name string
	// If is the rule's condition. Nil matches every subject.
	If *Condition
	// Serve is what the rule serves. The zero Serve is invalid in a rule.
	Serve Serve

	line int
}

// Op is a condition operator. The zero Op is invalid.
type Op string

// Operators on one attribute. An attribute that is absent, or of a type the
// operator does not accept, never matches, whatever the operator (wrap a
// condition in Not to match absence).
const (
	OpEquals     Op = "equals"      // string, number or bool equality with Value
	OpNotEquals  Op = "not_equals"  // present and different from Value
	OpIn         Op = "in"          // string or number in Values
	OpNotIn      Op = "not_in"      // present and not in Values
	OpContains   Op = "contains"    // string contains Value, or a []string/[]any holds it
	OpStartsWith Op = "starts_with" // string prefix
	OpEndsWith   Op = "ends_with"   // string suffix
	OpMatches    Op = "matches"     // RE2 regular expression, compiled at load
	OpLT         Op = "lt"          // numeric <
	OpLTE        Op = "lte"         // numeric <=
	OpGT         Op = "gt"          // numeric >
	OpGTE        Op = "gte"         // numeric >=
	OpSemverEq   Op = "semver_eq"   // semantic version ==
	OpSemverLT   Op = "semver_lt"   // semantic version <
	OpSemverLTE  Op = "semver_lte"  // semantic version <=
	OpSemverGT   Op = "semver_gt"   // semantic version >
	OpSemverGTE  Op = "semver_gte"  // semantic version >=
	OpBefore     Op = "before"      // time before Value; without Attr, the current time
	OpAfter      Op = "after"       // time at or after Value; without Attr, the current time
	OpExists     Op = "exists"      // the attribute is present (any value)
)

// Condition is a node of a condition tree: exactly one of an attribute test
// (Attr, Op, Value or Values), All, Any, Not or Segment. The zero Condition
// is invalid.
type Condition struct {
	// Attr names the context attribute; "targetingKey" is the targeting key.
	Attr string
	// Op is the operator applied to Attr.
	Op Op
	// Value is the operand of single-value operators: a string, number,
	// bool, or (for before/after) a time.Time or RFC 3339 string.
	Value any
	// Values is the operand list of in and not_in.
	Values []any
	// All matches when every child matches (an empty All matches).
	All []Condition
	// Any matches when at least one child matches (an empty Any does not).
	Any []Condition
	// Not matches when its child does not.
	Not *Condition
	// Segment matches subjects in the named segment.
	Segment string

	line int
}

// Segment is a reusable set of subjects: explicit targeting keys, and a
// condition for everyone else. The zero Segment matches nobody.
type Segment struct {
	// Keys are targeting keys always in the segment.
	Keys []string
	// Excluded are targeting keys never in the segment (Keys wins).
	Excluded []string
	// If admits the other subjects it matches. Nil admits none. It may not
	// refer to segments.
	If *Condition

	line int
	file string
}

// Serve says what a rule or a flag's fallthrough serves: exactly one of
// Variant, Rollout or Progressive. The zero Serve serves the flag's Default.
type Serve struct {
	// Variant is served to every subject.
	Variant string
	// Rollout splits subjects across variants by weight, in this order.
	Rollout []Weight
	// Progressive ramps one variant's share over time.
	Progressive *Progressive
}

// Weight is one variant's share of a Rollout; the zero Weight names no
// variant and is invalid. Weights are relative: [1, 3]
// serves 25% and 75%. Raising one weight while keeping the total moves
// subjects only into that variant.
type Weight struct {
	Variant string
	Weight  uint32
}

// Progressive serves Variant to a share of subjects that changes over time
// and Otherwise to the rest. The zero Progressive is invalid: it names no
// variant. Give either From and To (a linear ramp) or
// Steps (the share jumps at each step). Before the first point the share is
// zero; after the last it stays at the last point's percent.
type Progressive struct {
	// Variant is the variant being rolled out. Required.
	Variant string
	// Otherwise is served to subjects not (yet) in. Empty means the flag's
	// Default.
	Otherwise string
	// From and To bound a linear ramp from From.Percent at From.At to
	// To.Percent at To.At.
	From, To *Step
	// Steps are scheduled percentages, in increasing time order.
	Steps []Step
}

// Step is a percentage in force from a point in time. The zero Step is
// invalid: it has no time.
type Step struct {
	At      time.Time
	Percent float64 // 0 to 100
}
