package rollout

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits of a release manifest: everything a client sends is bounded.
const (
	MaxReleaseSize  = 64 << 10 // bytes of a manifest
	MaxReleaseSteps = 100      // steps, after a canary's expansion
	maxListLen      = 100      // weights, percentages, analyzers
	maxNameLen      = 200
	maxDuration     = 7 * 24 * time.Hour
)

// ReleaseError says what is wrong with a release manifest and where: the
// file (as the caller named it), the line when known, the step. It unwraps
// to ErrInvalidRelease. The zero value names nothing; the package always
// sets Reason.
type ReleaseError struct {
	File   string // as given to ParseRelease; "" when unnamed
	Line   int    // 1-based; 0 when unknown
	Step   int    // index in Steps, -1 for the release as a whole
	Name   string // the step's name, if any
	Reason string
}

// ErrInvalidRelease is wrapped by *ReleaseError.
var ErrInvalidRelease = errors.New("rollout: invalid release")

// Error names the file, line and step, and what is wrong.
func (e *ReleaseError) Error() string {
	var b strings.Builder
	b.WriteString("rollout: release")
	if e.File != "" {
		b.WriteString(" " + e.File)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Step >= 0 {
		fmt.Fprintf(&b, ": step %d", e.Step)
		if e.Name != "" {
			fmt.Fprintf(&b, " (%s)", e.Name)
		}
	}
	b.WriteString(": " + e.Reason)
	return b.String()
}

// Unwrap returns ErrInvalidRelease.
func (e *ReleaseError) Unwrap() error { return ErrInvalidRelease }

// ParseRelease reads a release manifest, YAML or JSON (JSON is YAML), and
// validates it: unknown fields, a step with no kind or two, values out of
// range, names too long or duplicated are refused with a *ReleaseError
// naming the file (name, for messages), the line and the step. Nothing is
// bound: Release.Plan checks the names against a process's adapters.
//
//	id: orders-v2
//	version: v2
//	binary: /opt/orders/releases/v2/orders
//	steps:
//	  - migration: {name: split_name, phase: start}
//	  - blueGreen: {window: 30s, interval: 5s, analyzers: [errors], startWeight: 1000}
//	  - canary: {weights: [1000, 5000, 10000], pause: 10s, analyzer: canary, count: 2, interval: 5s}
//	  - rampFlag: {flag: read-new-name, percentages: [50, 100], interval: 10s, analyzer: rows-agree}
//	  - migration: {name: split_name, phase: backfill}
//	  - migration: {name: split_name, phase: switch-reads}
//	  - waitOldGone: {poll: 1s}
//	    timeout: 1m
//	  - migration: {name: split_name, phase: complete}
func ParseRelease(data []byte, name string) (*Release, error) {
	if len(data) > MaxReleaseSize {
		return nil, &ReleaseError{File: name, Step: -1, Reason: fmt.Sprintf("%d bytes, more than %d", len(data), MaxReleaseSize)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var rel Release
	if err := dec.Decode(&rel); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ReleaseError{File: name, Step: -1, Reason: "empty manifest"}
		}
		reason := strings.TrimPrefix(err.Error(), "yaml: ")
		reason = strings.ReplaceAll(strings.TrimPrefix(reason, "unmarshal errors:\n  "), "\n  ", "; ")
		return nil, &ReleaseError{File: name, Line: yamlLine(err), Step: -1, Reason: reason}
	}
	var extra yaml.Node
	if dec.Decode(&extra) == nil {
		return nil, &ReleaseError{File: name, Line: extra.Line, Step: -1, Reason: "more than one document"}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err == nil {
		rel.lines = stepLines(&doc)
	}
	rel.src = name
	if err := rel.Validate(); err != nil {
		return nil, err
	}
	return &rel, nil
}

var yamlLinePattern = regexp.MustCompile(`line (\d+)`)

func yamlLine(err error) int {
	m := yamlLinePattern.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n := 0
	fmt.Sscan(m[1], &n)
	return n
}

// stepLines finds the line of each item of the top-level "steps" list.
func stepLines(doc *yaml.Node) []int {
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "steps" && m.Content[i+1].Kind == yaml.SequenceNode {
			var lines []int
			for _, it := range m.Content[i+1].Content {
				lines = append(lines, it.Line)
			}
			return lines
		}
	}
	return nil
}

var refPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)

// Validate checks the release without binding it (ParseRelease calls it;
// a Release built in code or read from a state is checked again by
// Plan).
func (rel *Release) Validate() error {
	bad := func(i int, format string, args ...any) error {
		e := &ReleaseError{File: rel.src, Step: i, Reason: fmt.Sprintf(format, args...)}
		if i >= 0 && i < len(rel.lines) {
			e.Line = rel.lines[i]
			e.Name = rel.Steps[i].Name
		}
		return e
	}
	if err := ValidID(rel.ID); err != nil {
		return bad(-1, "id: %v", err)
	}
	if rel.Version == "" || len(rel.Version) > maxNameLen || !refPattern.MatchString(rel.Version) {
		return bad(-1, "version %q: want 1 to %d letters, digits, '.', '_', '/' or '-'", rel.Version, maxNameLen)
	}
	if len(rel.Binary) > 4096 || strings.ContainsRune(rel.Binary, 0) {
		return bad(-1, "binary: not a path")
	}
	if len(rel.Steps) == 0 {
		return bad(-1, "no steps")
	}
	if len(rel.Steps) > MaxReleaseSteps {
		return bad(-1, "%d steps, more than %d", len(rel.Steps), MaxReleaseSteps)
	}
	names := map[string]int{}
	upgrades := 0
	for i := range rel.Steps {
		s := &rel.Steps[i]
		kinds := s.kinds()
		switch {
		case len(kinds) == 0:
			return bad(i, "no kind: set one of upgrade, blueGreen, setWeight, canary, pause, analyze, rampFlag, migration, waitOldGone, hook")
		case len(kinds) > 1:
			return bad(i, "two kinds (%s): a step has one", strings.Join(kinds, ", "))
		}
		if len(s.Name) > maxNameLen {
			return bad(i, "name longer than %d bytes", maxNameLen)
		}
		if s.Name != "" {
			if j, ok := names[s.Name]; ok {
				return bad(i, "name %q already used by step %d", s.Name, j)
			}
			names[s.Name] = i
		}
		if err := checkDuration("timeout", s.Timeout); err != nil {
			return bad(i, "%v", err)
		}
		if s.Upgrade != nil || s.BlueGreen != nil {
			upgrades++
		}
		if err := s.validate(); err != nil {
			return bad(i, "%s: %v", kinds[0], err)
		}
	}
	if upgrades > 1 {
		return bad(-1, "%d upgrade or blue-green steps: a release installs one version, once", upgrades)
	}
	return nil
}

func (s *ReleaseStep) kinds() []string {
	var k []string
	for _, c := range []struct {
		set  bool
		name string
	}{
		{s.Upgrade != nil, "upgrade"}, {s.BlueGreen != nil, "blueGreen"}, {s.SetWeight != nil, "setWeight"},
		{s.Canary != nil, "canary"}, {s.Pause != nil, "pause"}, {s.Analyze != nil, "analyze"},
		{s.RampFlag != nil, "rampFlag"}, {s.Migration != nil, "migration"}, {s.WaitOldGone != nil, "waitOldGone"},
		{s.Hook != nil, "hook"},
	} {
		if c.set {
			k = append(k, c.name)
		}
	}
	return k
}

func checkDuration(what string, d Duration) error {
	if d < 0 || time.Duration(d) > maxDuration {
		return fmt.Errorf("%s %s is outside 0..%s", what, time.Duration(d), maxDuration)
	}
	return nil
}

func checkRef(what, ref string, required bool) error {
	switch {
	case ref == "" && required:
		return fmt.Errorf("%s is required", what)
	case ref == "":
		return nil
	case len(ref) > maxNameLen || !refPattern.MatchString(ref):
		return fmt.Errorf("%s %q: want 1 to %d letters, digits, '.', '_', '/' or '-'", what, ref, maxNameLen)
	}
	return nil
}

func (p *AnalysisParams) validate() error {
	if p.Count < 0 || p.Count > 0xffff || p.MaxInconclusive < 0 || p.MinConclusive < 0 {
		return errors.New("count, maxInconclusive and minConclusive must be in 0..65535")
	}
	return checkDuration("interval", p.Interval)
}

func (p *AnalysisParams) options() AnalysisOptions {
	return AnalysisOptions{Count: p.Count, Interval: time.Duration(p.Interval), MaxInconclusive: p.MaxInconclusive,
		MinConclusive: p.MinConclusive, FailInconclusive: p.FailInconclusive}
}

func checkWeight(w uint32) error {
	if w > MaxWeight {
		return fmt.Errorf("weight %d basis points is outside 0..%d", w, MaxWeight)
	}
	return nil
}

// validate checks the parameters of the step's kind.
func (s *ReleaseStep) validate() error {
	switch {
	case s.BlueGreen != nil:
		p := s.BlueGreen
		if err := errors.Join(checkDuration("window", p.Window), checkDuration("interval", p.Interval)); err != nil {
			return err
		}
		if len(p.Analyzers) > maxListLen {
			return fmt.Errorf("%d analyzers, more than %d", len(p.Analyzers), maxListLen)
		}
		for _, a := range p.Analyzers {
			if err := checkRef("analyzer", a, true); err != nil {
				return err
			}
		}
		if p.MinConclusive < 0 {
			return errors.New("negative minConclusive")
		}
		if p.StartWeight != nil {
			return checkWeight(*p.StartWeight)
		}
	case s.SetWeight != nil:
		return checkWeight(s.SetWeight.Weight)
	case s.Canary != nil:
		p := s.Canary
		if len(p.Weights) == 0 || len(p.Weights) > maxListLen {
			return fmt.Errorf("weights: want 1 to %d", maxListLen)
		}
		for _, w := range p.Weights {
			if err := checkWeight(w); err != nil {
				return err
			}
		}
		if err := errors.Join(checkDuration("pause", p.Pause), checkRef("analyzer", p.Analyzer, false), p.validate()); err != nil {
			return err
		}
	case s.Pause != nil:
		return checkDuration("duration", s.Pause.Duration)
	case s.Analyze != nil:
		return errors.Join(checkRef("analyzer", s.Analyze.Analyzer, true), s.Analyze.validate())
	case s.RampFlag != nil:
		p := s.RampFlag
		if len(p.Percentages) == 0 || len(p.Percentages) > maxListLen {
			return fmt.Errorf("percentages: want 1 to %d", maxListLen)
		}
		for _, v := range p.Percentages {
			if !(v >= 0 && v <= 100) {
				return fmt.Errorf("percentage %v is outside 0..100", v)
			}
		}
		return errors.Join(checkRef("flag", p.Flag, true), checkDuration("interval", p.Interval), checkRef("analyzer", p.Analyzer, false))
	case s.Migration != nil:
		if err := checkRef("name", s.Migration.Name, true); err != nil {
			return err
		}
		switch s.Migration.Phase {
		case MigrationStart, MigrationBackfill, MigrationSwitchReads, MigrationComplete:
		default:
			return fmt.Errorf("phase %q: want %s, %s, %s or %s", s.Migration.Phase, MigrationStart, MigrationBackfill, MigrationSwitchReads, MigrationComplete)
		}
	case s.WaitOldGone != nil:
		return checkDuration("poll", s.WaitOldGone.Poll)
	case s.Hook != nil:
		return errors.Join(checkRef("hook", s.Hook.Hook, true), checkDuration("interval", s.Hook.Interval))
	}
	return nil
}
