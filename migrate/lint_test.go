package migrate_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/batonhq/baton/migrate"
)

// TestLintCorpus runs LintSQL over testdata/lint/<dialect>/*.sql. Each file
// starts with "-- expect: rule, rule" (or "none"); safe-* files expect
// none, unsafe-* files at least one. Every rule of a dialect must be
// exercised by at least one unsafe file of that dialect.
func TestLintCorpus(t *testing.T) {
	for _, d := range []migrate.Dialect{migrate.PostgreSQL, migrate.MySQL, migrate.SQLite} {
		t.Run(d.String(), func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join("testdata", "lint", d.String(), "*.sql"))
			if err != nil || len(files) == 0 {
				t.Fatalf("no corpus: %v", err)
			}
			covered := map[string]bool{}
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				text := string(b)
				header, _, _ := strings.Cut(text, "\n")
				spec, ok := strings.CutPrefix(header, "-- expect:")
				if !ok {
					t.Fatalf("%s: first line must be '-- expect: ...'", f)
				}
				var want []string
				for _, r := range strings.Split(spec, ",") {
					if r = strings.TrimSpace(r); r != "" && r != "none" {
						want = append(want, r)
					}
				}
				base := filepath.Base(f)
				if strings.HasPrefix(base, "safe-") != (len(want) == 0) {
					t.Fatalf("%s: safe files expect none, unsafe ones at least one rule", f)
				}
				var got []string
				for _, fd := range migrate.LintSQL(d, text) {
					if fd.Explanation == "" || fd.Alternative == "" || fd.Line == 0 {
						t.Errorf("%s: incomplete finding %+v", f, fd)
					}
					if !slices.Contains(got, fd.Name) {
						got = append(got, fd.Name)
					}
					covered[fd.Name] = true
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("%s: got %v, want %v", f, got, want)
				}
			}
			for _, r := range migrate.Rules() {
				if slices.Contains(r.Dialects, d) && !covered[r.Name] {
					t.Errorf("rule %s applies to %v but no corpus file triggers it", r.Name, d)
				}
			}
		})
	}
}

func TestLintOperations(t *testing.T) {
	m := &migrate.Migration{Name: "lint_ops", Operations: []migrate.Operation{
		migrate.AddColumn{Table: "users", Column: migrate.Column{Name: "tenant", Type: "bigint", NotNull: true}},
		migrate.RawSQL{Up: "ALTER TABLE users DROP COLUMN legacy", Contract: true},
		migrate.RawSQL{Up: "CREATE INDEX users_email ON users (email)"},
		migrate.RenameColumn{Table: "users", From: "login", To: "username"},
	}}
	got := migrate.Lint(m, migrate.PostgreSQL)
	var names []string
	for _, f := range got {
		names = append(names, f.Name)
	}
	want := []string{"add-column-not-null-without-default", "index-without-concurrently"}
	if !slices.Equal(names, want) {
		t.Fatalf("got %v, want %v", names, want)
	}
	if got[0].Operation != 0 || got[1].Operation != 2 || got[1].Line != 1 {
		t.Fatalf("locations: %+v", got)
	}
	if s := got[1].String(); !strings.Contains(s, "operations[2] line 1") || !strings.Contains(s, "CONCURRENTLY") {
		t.Fatalf("String(): %s", s)
	}
}
