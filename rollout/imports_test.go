package rollout_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The engine knows graceful, canary, flags and migrate only through the
// interfaces it declares: the adapters live in rollout/bind. A leaf in
// the engine's dependencies would make the engine unusable, and
// unreadable, without all four.
func TestEngineImportsNoLeaf(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		// The console's browser test and rolloutctl's bars stay out of
		// what a service builds.
		if strings.HasPrefix(dep, "github.com/chromedp/") || strings.HasPrefix(dep, "github.com/vbauerster/") {
			t.Errorf("package rollout depends on %s", dep)
		}
		for _, leaf := range []string{"graceful", "canary", "flags", "migrate", "rollout/bind", "rollout/fleet"} {
			if dep == "github.com/batonhq/baton/"+leaf || strings.HasPrefix(dep, "github.com/batonhq/baton/"+leaf+"/") {
				t.Errorf("package rollout depends on %s", dep)
			}
		}
	}
}
