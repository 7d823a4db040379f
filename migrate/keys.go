package migrate

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A backfill walks a table in the order of a key: the primary key, or a
// UNIQUE key whose columns are all NOT NULL, of any type and any number of
// columns. A checkpoint stores the last key done as a JSON array of typed
// values ("i:42", "s:text", "b:<base64>", "t:<RFC 3339>", "f:1.5"), so
// that it binds back as the driver read it.

// encodeKey encodes key values as scanned into []any.
func encodeKey(vals []any) (string, error) {
	out := make([]string, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case int64:
			out[i] = "i:" + strconv.FormatInt(x, 10)
		case string:
			out[i] = "s:" + x
		case []byte:
			out[i] = "b:" + base64.StdEncoding.EncodeToString(x)
		case time.Time:
			out[i] = "t:" + x.Format(time.RFC3339Nano)
		case float64:
			out[i] = "f:" + strconv.FormatFloat(x, 'g', -1, 64)
		case bool:
			out[i] = "i:" + map[bool]string{true: "1", false: "0"}[x]
		case nil:
			return "", fmt.Errorf("%w: a key column holds NULL", ErrInvalid)
		default:
			out[i] = "s:" + fmt.Sprint(x)
		}
	}
	b, err := json.Marshal(out)
	return string(b), err
}

// decodeKey is encodeKey's inverse.
func decodeKey(s string) ([]any, error) {
	var parts []string
	if err := json.Unmarshal([]byte(s), &parts); err != nil {
		return nil, fmt.Errorf("migrate: checkpoint key %q: %w", s, err)
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		tag, v, ok := strings.Cut(p, ":")
		if !ok {
			return nil, fmt.Errorf("migrate: checkpoint key %q: untyped value", s)
		}
		var err error
		switch tag {
		case "i":
			out[i], err = strconv.ParseInt(v, 10, 64)
		case "s":
			out[i] = v
		case "b":
			out[i], err = base64.StdEncoding.DecodeString(v)
		case "t":
			out[i], err = time.Parse(time.RFC3339Nano, v)
		case "f":
			out[i], err = strconv.ParseFloat(v, 64)
		default:
			err = fmt.Errorf("unknown tag %q", tag)
		}
		if err != nil {
			return nil, fmt.Errorf("migrate: checkpoint key %q: %w", s, err)
		}
	}
	return out, nil
}

// keyInt returns the value of a single integer key (for Progress), or 0.
func keyInt(vals []any) int64 {
	if len(vals) == 1 {
		if n, ok := vals[0].(int64); ok {
			return n
		}
	}
	return 0
}

// keyCompare is "the key of the row (columns cols, each prefixed by
// qual) op the key vals", op one of > and <=, with the bind arguments in
// order. Dialects that use an index for row values compare (a, b) with
// (?, ?); the others get the equivalent a > ? OR (a = ? AND b > ?).
func keyCompare(d dialect, qual string, cols []string, op string, vals []any) (string, []any) {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = qual + d.quote(c)
	}
	if len(cols) == 1 {
		return q[0] + " " + op + " ?", []any{vals[0]}
	}
	if d.caps().rowValues {
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")
		return "(" + strings.Join(q, ", ") + ") " + op + " (" + ph + ")", vals
	}
	strict := strings.TrimSuffix(op, "=")
	var ors []string
	var args []any
	for i := range cols {
		var ands []string
		for j := 0; j < i; j++ {
			ands = append(ands, q[j]+" = ?")
			args = append(args, vals[j])
		}
		last := strict
		if i == len(cols)-1 {
			last = op
		}
		ands = append(ands, q[i]+" "+last+" ?")
		args = append(args, vals[i])
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")", args
}

// keyMatch is "the row's key equals rec's" (rec like "NEW.").
func keyMatch(d dialect, cols []string, rec string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = d.quote(c) + " = " + rec + d.quote(c)
	}
	return strings.Join(parts, " AND ")
}

// keyOrder is the ORDER BY list of the key, descending if desc.
func keyOrder(d dialect, qual string, cols []string, desc bool) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = qual + d.quote(c)
		if desc {
			parts[i] += " DESC"
		}
	}
	return strings.Join(parts, ", ")
}
