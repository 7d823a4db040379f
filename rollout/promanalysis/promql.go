package promanalysis

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/model"
)

// What is substituted into PromQL comes from options (label names and
// values, durations), never from a query's own text: names are checked
// against Prometheus's grammar and values are written as quoted string
// literals, so no option can close a selector or add an operator.
var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// maxLabelValue bounds a label value written into a query.
const maxLabelValue = 1024

// ValidMetricName reports whether name is a valid Prometheus metric name
// ([a-zA-Z_:][a-zA-Z0-9_:]*).
func ValidMetricName(name string) bool { return metricName.MatchString(name) }

// ValidLabelName reports whether name is a valid Prometheus label name
// ([a-zA-Z_][a-zA-Z0-9_]*; names starting with "__" are Prometheus's own
// and are refused too).
func ValidLabelName(name string) bool {
	return labelName.MatchString(name) && !strings.HasPrefix(name, "__")
}

// QuoteLabelValue returns v as a PromQL string literal: double-quoted,
// with Go's escapes (PromQL reads the same), so that any value, quotes and
// backslashes included, stays one literal.
func QuoteLabelValue(v string) string { return strconv.Quote(v) }

// templateData is what a query template sees; every field is already a
// well-formed PromQL fragment.
type templateData struct {
	// Selector is the variant's full selector with braces, e.g.
	// {job="api",variant="canary"}; Matchers the same without braces,
	// for templates that add matchers of their own.
	Selector, Matchers string
	// Common and CommonMatchers leave the variant out (for the weight).
	Common, CommonMatchers string
	// Variant is the variant's label value as a quoted literal.
	Variant string
	// Range is the step of the range query as a PromQL duration (30s):
	// the range of increase() whose values the analysis adds up.
	Range string
}

// matchers writes the label matchers of labels in name order, each
// name="value" with the value quoted.
func matchers(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(QuoteLabelValue(labels[n]))
	}
	return b.String()
}

func checkLabels(labels map[string]string) error {
	for n, v := range labels {
		if !ValidLabelName(n) {
			return optErr("Labels", "label name %q is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", n)
		}
		if len(v) > maxLabelValue {
			return optErr("Labels", "value of label %s is %d bytes, above %d", n, len(v), maxLabelValue)
		}
	}
	return nil
}

// promDuration writes d as a PromQL duration in whole milliseconds at
// least (model.Duration's form: 1m30s, 500ms).
func promDuration(d time.Duration) string {
	return model.Duration(d.Truncate(time.Millisecond)).String()
}

// parseQuery parses one query template; the zero query means def.
func parseQuery(field, text, def string) (*template.Template, error) {
	if text == "" {
		text = def
	}
	if text == Disabled {
		return nil, nil
	}
	t, err := template.New(field).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, optErr("Queries."+field, "template %q: %v", text, err)
	}
	// Render once with sample data so that a template naming an unknown
	// field fails at construction, not at the first analysis.
	if _, err := render(t, templateData{}); err != nil {
		return nil, optErr("Queries."+field, "%v", err)
	}
	return t, nil
}

func render(t *template.Template, d templateData) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("template %s: %w", t.Name(), err)
	}
	return b.String(), nil
}
