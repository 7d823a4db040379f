package canarytest_test

import (
	"testing"
	"time"

	"github.com/batonhq/baton/canary/canarytest"
)

func TestClock(t *testing.T) {
	var c canarytest.Clock
	if !c.Now().Equal(canarytest.Epoch) {
		t.Fatalf("zero clock reads %s", c.Now())
	}
	if got := c.Advance(90 * time.Second); !got.Equal(canarytest.Epoch.Add(90*time.Second)) || !c.Now().Equal(got) {
		t.Fatalf("Advance: %s, Now %s", got, c.Now())
	}
	at := time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)
	c.Set(at)
	if !c.Now().Equal(at) || !canarytest.NewClock(at).Now().Equal(at) {
		t.Fatal("Set/NewClock")
	}
}
