package haproxy_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The package speaks the Runtime API itself: besides the standard library
// it imports rollout (for Step) and what rollout needs, never an engine's
// client or another part of the fleet.
func TestImports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, imp := range strings.Fields(string(out)) {
		if strings.Contains(imp, ".") && imp != "github.com/batonhq/baton/rollout" {
			t.Errorf("package haproxy imports %s", imp)
		}
	}
}
