package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/batonhq/baton/rollout"
)

// watch follows the rollout until it ends: a progress line per step (a
// bar each on a terminal) and its decisions as they are taken.
func (c *client) watch(limit, poll time.Duration, bars string, stdout, stderr io.Writer) int {
	out := newDisplay(bars, stdout)
	defer out.close()
	seen := map[string]bool{}
	phase := rollout.Phase("?")
	var rev int64
	id := ""
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		v, err := c.status(rev, poll)
		if err != nil {
			fmt.Fprintln(stderr, "rolloutctl: watch:", err)
			return 1
		}
		if v.ID != id && id != "" {
			fmt.Fprintf(out, "release %s replaced %s\n", v.ID, id)
		}
		id, rev = v.ID, v.Revision
		printDecisions(out, v, seen)
		if v.Phase != phase {
			phase = v.Phase
			fmt.Fprintf(out, "rollout %s: %s\n", v.ID, phaseName(v.Phase))
		}
		if v.Phase == rollout.PhaseRolledBack || v.Phase == rollout.PhaseFailed {
			fmt.Fprintf(out, "reason: %s\n", v.Reason)
		}
		// The bars last: once all are complete, mpb draws no more, and a
		// line written after would not be shown.
		out.update(v)
		switch v.Phase {
		case rollout.PhaseSucceeded:
			return 0
		case rollout.PhaseRolledBack, rollout.PhaseFailed:
			return 1
		}
	}
	fmt.Fprintf(stderr, "rolloutctl: watch: the rollout did not end within %s\n", limit)
	return 1
}

// printDecisions prints the decisions not printed yet, oldest first.
func printDecisions(w io.Writer, v rollout.StatusView, seen map[string]bool) {
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	add := func(step string, ds []rollout.Decision) {
		for _, d := range ds {
			k := step + "|" + d.At.Format(time.RFC3339Nano) + "|" + d.Reason
			if seen[k] {
				continue
			}
			seen[k] = true
			text := d.Reason
			if step != "" {
				text = step + ": " + text
			}
			lines = append(lines, line{d.At, text})
		}
	}
	add("", v.Decisions)
	for _, s := range v.Steps {
		add(s.Name, s.Decisions)
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	for _, l := range lines {
		fmt.Fprintf(w, "%s  %s\n", l.at.UTC().Format("15:04:05.000"), l.text)
	}
}

// progress says where a step stands at now (the service's clock), in one
// line.
func progress(s rollout.StepView, now time.Time) string {
	parts := []string{string(s.Status)}
	if s.Waiting {
		parts[0] += " (waiting)"
	}
	if s.Units > 0 {
		unit := s.Unit
		if s.Units > 1 {
			unit += "s"
		}
		parts = append(parts, fmt.Sprintf("%d/%d %s", s.UnitsDone, s.Units, unit))
	}
	if len(s.Percentages) > 0 {
		ps := make([]string, len(s.Percentages))
		for i, p := range s.Percentages {
			ps[i] = fmt.Sprintf("%v%%", p)
			if i < s.UnitsDone {
				ps[i] = "[" + ps[i] + "]"
			}
		}
		parts = append(parts, strings.Join(ps, " "))
	}
	if !s.WaitEndsAt.IsZero() {
		parts = append(parts, fmt.Sprintf("%s left", max(0, s.WaitEndsAt.Sub(now)).Round(time.Second)))
	}
	if b := s.Backfill; b != nil {
		t := fmt.Sprintf("backfill %d rows (%.0f%%)", b.Rows, b.Fraction*100)
		if b.ETASeconds > 0 {
			t += fmt.Sprintf(", ETA %s", time.Duration(b.ETASeconds*float64(time.Second)).Round(time.Second))
		}
		parts = append(parts, t)
	}
	if s.Error != "" {
		parts = append(parts, "error: "+s.Error)
	}
	return strings.Join(parts, ", ")
}

// display shows the steps' progress; what is written to it (decisions)
// goes above the progress.
type display interface {
	io.Writer
	update(v rollout.StatusView)
	close()
}

// newDisplay draws bars when mode is "on", or "auto" and w is a terminal;
// otherwise it prints a line per step whenever the step's progress
// changes, which reads well in a log.
func newDisplay(mode string, w io.Writer) display {
	if mode == "on" || (mode == "auto" && isTerminal(w)) {
		opts := []mpb.ContainerOption{mpb.WithOutput(w)}
		if !isTerminal(w) {
			// Drawn even into a pipe when asked, at a width of its own
			// (a terminal's is its own).
			opts = append(opts, mpb.WithAutoRefresh(), mpb.WithWidth(120))
		}
		return &bars{p: mpb.New(opts...), w: w}
	}
	return &lines{w: w, last: map[string]string{}}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

type lines struct {
	w    io.Writer
	last map[string]string
}

func (l *lines) Write(b []byte) (int, error) { return l.w.Write(b) }
func (l *lines) close()                      {}

func (l *lines) update(v rollout.StatusView) {
	for i, s := range v.Steps {
		p := progress(s, v.Now)
		if s.Status == rollout.StepPending && l.last[s.Name] == "" {
			l.last[s.Name] = p
			continue // pending steps are listed once they move
		}
		if l.last[s.Name] != p {
			l.last[s.Name] = p
			fmt.Fprintf(l.w, "  step %d/%d %s: %s\n", i+1, len(v.Steps), s.Name, p)
		}
	}
}

// bars draws one mpb bar per step: its units done (ramp percentages,
// measurements, bake rounds) against its units, and its progress line.
type bars struct {
	p    *mpb.Progress
	w    io.Writer
	id   string
	bars []*mpb.Bar

	mu    sync.Mutex
	phase string
	steps []rollout.StepView
	skew  time.Duration // the service's clock minus this one's
}

// line is bar i's text, drawn at every refresh: a wait's time left
// counts down between two answers of the service.
func (b *bars) line(i int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if i < 0 || i >= len(b.steps) {
		return b.phase
	}
	return progress(b.steps[i], time.Now().Add(b.skew))
}

// Write prints p above the bars; once every bar is complete mpb stops
// drawing, and p goes straight to the output.
func (b *bars) Write(p []byte) (int, error) {
	n, err := b.p.Write(p)
	if err != nil {
		return b.w.Write(p)
	}
	return n, nil
}

func (b *bars) update(v rollout.StatusView) {
	if v.ID != b.id || len(v.Steps)+1 != len(b.bars) {
		b.abortAll()
		b.id, b.bars = v.ID, nil
		// The first line is the rollout's: it completes only when watch
		// ends, so that mpb keeps drawing (and printing the lines written
		// above) while the last step is done but the rollout is not.
		b.bars = append(b.bars, b.p.AddBar(1,
			mpb.PrependDecorators(decor.Name("rollout "+v.ID, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return b.line(-1) }))))
		for i, s := range v.Steps {
			b.bars = append(b.bars, b.p.AddBar(1,
				mpb.PrependDecorators(decor.Name(fmt.Sprintf("%d %s", i+1, s.Name), decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return b.line(i) })),
			))
		}
	}
	phase := phaseName(v.Phase)
	if v.Paused {
		phase += " (paused)"
	}
	b.mu.Lock()
	b.phase, b.steps, b.skew = phase, v.Steps, time.Until(v.Now)
	b.mu.Unlock()
	for i, s := range v.Steps {
		bar := b.bars[i+1]
		if bar.AbortedOrCompleted() {
			continue
		}
		total := int64(max(s.Units, 1))
		bar.SetTotal(total, false)
		switch s.Status {
		case rollout.StepSucceeded, rollout.StepSkipped:
			bar.SetCurrent(total)
		case rollout.StepFailed, rollout.StepRolledBack, rollout.StepRollbackFailed:
			bar.Abort(false)
		default:
			bar.SetCurrent(int64(min(s.UnitsDone, s.Units)))
		}
	}
}

func (b *bars) abortAll() {
	for _, bar := range b.bars {
		if !bar.AbortedOrCompleted() {
			bar.Abort(false)
		}
	}
}

func (b *bars) close() {
	if len(b.bars) > 0 {
		b.bars[0].SetCurrent(1)
	}
	b.abortAll()
	b.p.Wait()
}
