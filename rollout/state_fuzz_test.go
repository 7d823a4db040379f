package rollout

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

type fuzzWeights struct{}

func (fuzzWeights) SetWeight(context.Context, uint32) error { return nil }

type fuzzFlags struct{}

func (fuzzFlags) SetPercent(context.Context, string, float64) error { return nil }
func (fuzzFlags) Disable(context.Context, string) error             { return nil }

// FuzzDecodeStatus feeds the state loader documents it never wrote: it
// must refuse them with an error or load a state the runner can resume,
// never panic, and what it loads must encode to a document it loads
// again the same.
func FuzzDecodeStatus(f *testing.F) {
	p, err := Plan{ID: "fuzz", Steps: []Step{
		SetWeight(fuzzWeights{}, 100),
		RampFlag(fuzzFlags{}, "f", RampOptions{Percentages: []float64{10, 50}}),
		Analyze(AnalyzerFunc(func(context.Context) (Verdict, string, error) { return Pass, "", nil }), AnalysisOptions{Count: 3}),
		Pause(time.Minute),
	}}.normalize()
	if err != nil {
		f.Fatal(err)
	}
	st := Status{ID: p.ID, PlanHash: p.hash(), Current: 1, Phase: PhaseRunning, Run: 1}
	for _, s := range p.Steps {
		st.Steps = append(st.Steps, StepState{Name: s.Name, Kind: s.act.kind(), Status: StepPending})
	}
	st.Steps[0].Status, st.Steps[1].Status, st.Steps[1].Progress = StepSucceeded, StepRunning, 1
	seed, _ := json.Marshal(st)
	f.Add(seed)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"fuzz","steps":[{"progress":-1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeStatus(data, p)
		if err != nil {
			return
		}
		again, err := json.Marshal(&got)
		if err != nil {
			t.Fatalf("a loaded state does not encode: %v", err)
		}
		back, err := decodeStatus(again, p)
		if err != nil {
			t.Fatalf("a loaded state, encoded, is refused: %v\n%s", err, again)
		}
		if b, _ := json.Marshal(&back); string(b) != string(again) {
			t.Fatalf("loading is not stable:\n%s\n%s", again, b)
		}
		for i, s := range got.Steps {
			if c, ok := p.Steps[i].act.(progressChecker); ok && c.checkProgress(s.Progress) != nil {
				t.Fatalf("step %d loaded with progress %d out of range", i, s.Progress)
			}
		}
	})
}
