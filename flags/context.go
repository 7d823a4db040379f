package flags

import (
	"encoding/json"
	"strconv"
	"time"
)

// TargetingKeyAttr is the attribute name under which conditions see the
// targeting key; it is also the key OpenFeature uses in a flattened context.
const TargetingKeyAttr = "targetingKey"

// MaxAttributeLen bounds, in bytes, the string attributes (and the
// targeting key) that evaluation reads. A longer one counts as absent: no
// operator matches it, it buckets nobody and it is in no segment's keys.
// Attributes usually carry what a client sent (a header, a user agent, an
// e-mail address), and every string operator, matches above all, takes
// time in proportion to its input; with this bound an evaluation's
// time has a ceiling whatever a client sends (see BENCHMARKS.md).
const MaxAttributeLen = 4 << 10

// MaxAttributeItems bounds the list attributes ([]string, []any) that
// contains scans; a longer list counts as absent, for the same reason as
// MaxAttributeLen.
const MaxAttributeItems = 1024

// EvalContext describes the subject of an evaluation. The zero EvalContext
// is an anonymous subject with no attributes: rules on attributes do not
// match it and percentage rollouts serve it the flag's Default.
//
// Lookups read Attributes in place, so building an EvalContext on the stack
// around an existing map (such as an OpenFeature flattened context) costs
// nothing. Evaluation never modifies or retains it.
type EvalContext struct {
	// TargetingKey identifies the subject (user, tenant, request...). When
	// empty, Attributes["targetingKey"] is used if it is a string.
	TargetingKey string
	// Attributes holds the subject's attributes: strings, numbers (any Go
	// integer or float type, json.Number), bools, time.Time, []string, []any.
	Attributes map[string]any
}

// targetingKey returns the subject's key, or "" (anonymous) when it has
// none or it is longer than MaxAttributeLen.
func (ec *EvalContext) targetingKey() string {
	k := ec.TargetingKey
	if k == "" {
		k, _ = ec.Attributes[TargetingKeyAttr].(string)
	}
	if len(k) > MaxAttributeLen {
		return ""
	}
	return k
}

// lookup returns the attribute without boxing the targeting key: a string
// converted to any would allocate on every evaluation. Values beyond
// MaxAttributeLen or MaxAttributeItems are reported absent here, the one
// place every operator reads through.
func (ec *EvalContext) lookup(name string) (v any, tk string, isKey, ok bool) {
	if name == TargetingKeyAttr {
		if k := ec.targetingKey(); k != "" {
			return nil, k, true, true
		}
		return nil, "", false, false
	}
	v, ok = ec.Attributes[name]
	if !ok || v == nil {
		return nil, "", false, false
	}
	switch x := v.(type) {
	case string:
		ok = len(x) <= MaxAttributeLen
	case json.Number:
		ok = len(x) <= MaxAttributeLen
	case []string:
		ok = len(x) <= MaxAttributeItems
	case []any:
		ok = len(x) <= MaxAttributeItems
	}
	return v, "", false, ok
}

func (ec *EvalContext) str(name string) (string, bool) {
	v, tk, isKey, ok := ec.lookup(name)
	if isKey || !ok {
		return tk, isKey
	}
	s, ok := v.(string)
	return s, ok
}

func (ec *EvalContext) num(name string) (float64, bool) {
	v, tk, isKey, ok := ec.lookup(name)
	if isKey {
		return parseNum(tk)
	}
	if !ok {
		return 0, false
	}
	return toNum(v)
}

func toNum(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int16:
		return float64(x), true
	case int8:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint8:
		return float64(x), true
	case float32:
		return float64(x), true
	case json.Number:
		return parseNum(string(x))
	case string:
		return parseNum(x)
	}
	return 0, false
}

func parseNum(s string) (float64, bool) {
	// Checked first because ParseFloat allocates its error.
	if s == "" || !(s[0] == '-' || s[0] == '+' || s[0] == '.' || (s[0] >= '0' && s[0] <= '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// unixNano reads a time attribute: time.Time, an RFC 3339 string, or a
// number of seconds since the Unix epoch.
func (ec *EvalContext) unixNano(name string) (int64, bool) {
	v, tk, isKey, ok := ec.lookup(name)
	if isKey {
		v, ok = tk, true
	}
	if !ok {
		return 0, false
	}
	switch x := v.(type) {
	case time.Time:
		return x.UnixNano(), true
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		return t.UnixNano(), err == nil
	}
	if f, ok := toNum(v); ok {
		return int64(f * 1e9), true
	}
	return 0, false
}
