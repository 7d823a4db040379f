package readme

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// header starts the generated file: every package a snippet may name,
// each used once so that the file compiles whichever snippets use it.
const header = `package readme

import (
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/graceful"
	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/bind"
)

var (
	_ = http.StatusOK
	_ = os.Exit
	_ = filepath.Join
	_ = time.Second
	_ = canary.New
	_ = flags.New
	_ = graceful.New
	_ = migrate.New
	_ = rollout.New
	_ = bind.NewUpgrader
)

`

// snippet is one ```go block of the README.
type snippet struct {
	line int // of its first code line
	code string
}

func snippets(t *testing.T, path string) []snippet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []snippet
	var cur *snippet
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```go":
			cur = &snippet{line: n + 1}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.code += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: a ```go block is not closed", path, cur.line-1)
	}
	return out
}

// TestSnippetsCompile type-checks every Go snippet of README.md as the
// body of a function of its own, with the stand-ins of standins_test.go for
// the names a snippet takes from its surroundings (ctx, a handler, a
// database...). Errors are reported at the README's own lines.
func TestSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go vet")
	}
	readme, err := filepath.Abs("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ss := snippets(t, readme)
	if len(ss) < 5 {
		t.Fatalf("found %d Go snippets in %s; the README has one per package", len(ss), readme)
	}
	var b strings.Builder
	b.WriteString(header)
	for i, s := range ss {
		fmt.Fprintf(&b, "func snippet%d() {\n//line %s:%d\n%s}\n\n", i, readme, s.line, s.code)
	}
	dir := t.TempDir()
	gen := filepath.Join(dir, "snippets_test.go")
	if err := os.WriteFile(gen, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	here, err := filepath.Abs("snippets_test.go")
	if err != nil {
		t.Fatal(err)
	}
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {here: gen}})
	if err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ov, overlay, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "vet", "-overlay", ov, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("README.md's Go snippets do not compile (%v):\n%s", err, out)
	}
}
