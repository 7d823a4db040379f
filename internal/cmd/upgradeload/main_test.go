package main

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The servers' standard error is where races and handoffs show up.
func TestReadLog(t *testing.T) {
	in := strings.Join([]string{
		`{"msg":"handed off","total":9000000,"spawn":1000000,"child_startup":3000000,"handoff":6000000}`,
		"==================",
		"WARNING: DATA RACE",
		"Write at 0x00c000012345 by goroutine 7:",
		"==================",
		"WARNING: DATA RACE",
	}, "\n")
	hs := make(chan handoff, 2)
	done := make(chan serverLog, 1)
	readLog(strings.NewReader(in), hs, done)
	l := <-done
	if l.races != 2 || len(l.race) == 0 || l.race[0] != "WARNING: DATA RACE" {
		t.Errorf("races %d, first report %q", l.races, l.race)
	}
	if h := <-hs; h.handoff != 6*time.Millisecond || h.total != 9*time.Millisecond {
		t.Errorf("handoff %+v", h)
	}
}
