package promanalysis_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/batonhq/baton/rollout/promanalysis"
)

func TestQuoteLabelValue(t *testing.T) {
	for in, want := range map[string]string{
		`canary`:                `"canary"`,
		`a"}or vector(1)#`:      `"a\"}or vector(1)#"`,
		`back\slash`:            `"back\\slash"`,
		"new\nline":             `"new\nline"`,
		"\x00\u2028é":           `"\x00\u2028é"`,
		`{job="x"}`:             `"{job=\"x\"}"`,
		"`raw`":                 "\"`raw`\"",
		`'single'`:              `"'single'"`,
		strings.Repeat("ab", 3): `"ababab"`,
	} {
		if got := promanalysis.QuoteLabelValue(in); got != want {
			t.Errorf("QuoteLabelValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestNames(t *testing.T) {
	for _, n := range []string{"job", "_x", "a1_b"} {
		if !promanalysis.ValidLabelName(n) {
			t.Errorf("label name %q refused", n)
		}
	}
	for _, n := range []string{"", "1a", "a-b", "a:b", `a"`, "__name__", "a b", "é"} {
		if promanalysis.ValidLabelName(n) {
			t.Errorf("label name %q accepted", n)
		}
	}
	for _, n := range []string{"up", "job:rate5m", "_x:y_1"} {
		if !promanalysis.ValidMetricName(n) {
			t.Errorf("metric name %q refused", n)
		}
	}
	for _, n := range []string{"", "1up", "up{}", "a-b", "up or vector(1)"} {
		if promanalysis.ValidMetricName(n) {
			t.Errorf("metric name %q accepted", n)
		}
	}
}

func TestOptionsRefused(t *testing.T) {
	base := func() promanalysis.Options { return promanalysis.Options{Address: "http://127.0.0.1:9090"} }
	for name, c := range map[string]struct {
		edit  func(*promanalysis.Options)
		field string
	}{
		"label name":        {func(o *promanalysis.Options) { o.Labels = map[string]string{`job"}`: "x"} }, "Labels"},
		"reserved label":    {func(o *promanalysis.Options) { o.Labels = map[string]string{"__name__": "x"} }, "Labels"},
		"long value":        {func(o *promanalysis.Options) { o.Labels = map[string]string{"job": strings.Repeat("x", 2000)} }, "Labels"},
		"variant in labels": {func(o *promanalysis.Options) { o.Labels = map[string]string{"variant": "x"} }, "Labels"},
		"variant label":     {func(o *promanalysis.Options) { o.VariantLabel = "track}" }, "VariantLabel"},
		"same values":       {func(o *promanalysis.Options) { o.Canary = "stable" }, "Canary"},
		"alpha":             {func(o *promanalysis.Options) { o.Alpha = 1 }, "Alpha"},
		"step":              {func(o *promanalysis.Options) { o.Step = 10 * 60e9; o.Window = 60e9 }, "Step"},
		"template":          {func(o *promanalysis.Options) { o.Queries.Requests = "sum({{.Selector)" }, "Queries.Requests"},
		"unknown field":     {func(o *promanalysis.Options) { o.Queries.Errors = "sum(x{{.Nope}})" }, "Queries.Errors"},
		"no requests":       {func(o *promanalysis.Options) { o.Queries.Requests = promanalysis.Disabled }, "Queries.Requests"},
	} {
		o := base()
		c.edit(&o)
		_, err := promanalysis.New(o)
		var oe *promanalysis.OptionError
		if !errors.As(err, &oe) || oe.Field != c.field {
			t.Errorf("%s: %v, want an OptionError on %s", name, err, c.field)
		}
	}
	if _, err := promanalysis.New(promanalysis.Options{}); !errors.Is(err, promanalysis.ErrNoClient) {
		t.Errorf("no address: %v", err)
	}
}
