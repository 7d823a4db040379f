package migrate_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/batonhq/baton/migrate"
)

func TestLoadFile(t *testing.T) {
	m, err := migrate.LoadFile("testdata/migrations/split_name.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "split_name" || m.Version != "2.0.0" || len(m.Operations) != 4 {
		t.Fatalf("got %+v", m)
	}
	tr, ok := m.Operations[1].(migrate.Transform)
	if !ok || tr.Up["first_name"].For(migrate.MySQL) != "SUBSTRING_INDEX(name, ' ', 1)" || !strings.Contains(tr.Down["name"].For(migrate.SQLite), "||") {
		t.Fatalf("transform: %+v", m.Operations[1])
	}
	for _, d := range []migrate.Dialect{migrate.PostgreSQL, migrate.MySQL, migrate.SQLite} {
		if err := m.Validate(d); err != nil {
			t.Fatalf("%v: %v", d, err)
		}
		if f := migrate.Lint(m, d); len(f) != 0 {
			t.Fatalf("%v: lint: %v", d, f)
		}
	}

	j, err := migrate.LoadFile("testdata/migrations/rename.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := j.Operations[2].(migrate.DropColumn); !ok || len(j.Operations) != 3 {
		t.Fatalf("json: %+v", j)
	}
	f := migrate.Lint(j, migrate.PostgreSQL)
	if len(f) != 1 || f[0].Name != "index-without-concurrently" || f[0].Operation != 1 {
		t.Fatalf("json lint: %v", f)
	}
}

func TestLoadFileErrors(t *testing.T) {
	for file, want := range map[string]string{
		"testdata/migrations/bad_unknown_key.yaml": "colum",
		"testdata/migrations/bad_kind.yaml":        `unknown operation kind "add_columns"`,
		"testdata/migrations/missing.yaml":         "no such file",
	} {
		_, err := migrate.LoadFile(file)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: %v, want it to name the file and %q", file, err, want)
		}
		if !strings.Contains(file, "missing") && !errors.Is(err, migrate.ErrInvalid) {
			t.Errorf("%s: %v does not wrap ErrInvalid", file, err)
		}
	}
}

func TestValidate(t *testing.T) {
	users := "users"
	cases := []struct {
		m    migrate.Migration
		d    migrate.Dialect
		want string
	}{
		{migrate.Migration{Name: "bad name!", Operations: []migrate.Operation{migrate.DropTable{Table: "x"}}}, migrate.PostgreSQL, "name"},
		{migrate.Migration{Name: "m"}, migrate.PostgreSQL, "no operations"},
		{migrate.Migration{Name: "m", Operations: []migrate.Operation{migrate.AddColumn{Table: users, Column: migrate.Column{Name: "a", Type: "int", NotNull: true}}}}, migrate.PostgreSQL, "operations[0].add_column.column: column \"a\" is NOT NULL without a default"},
		{migrate.Migration{Name: "m", Operations: []migrate.Operation{migrate.AddColumn{Table: users, Column: migrate.Column{Name: "a", Type: "int", Default: "random()"}}}}, migrate.PostgreSQL, "not a constant literal"},
		{migrate.Migration{Name: "m", Operations: []migrate.Operation{migrate.AddColumn{Table: users, Column: migrate.Column{Name: "a", Type: "int; DROP TABLE x"}}}}, migrate.PostgreSQL, "type"},
		{migrate.Migration{Name: "m", Operations: []migrate.Operation{migrate.SetNotNull{Table: users, Column: "a"}}}, migrate.SQLite, "not supported"},
		{migrate.Migration{Name: "m", Operations: []migrate.Operation{migrate.Transform{Table: users, Add: []migrate.Column{{Name: "b", Type: "text"}}, Up: map[string]migrate.Expr{"b": {SQL: "a"}}}}}, migrate.MySQL, "no expression for the old columns"},
		{migrate.Migration{Name: "m", Operations: []migrate.Operation{migrate.Transform{Table: users, Add: []migrate.Column{{Name: "b", Type: "text"}}, Up: map[string]migrate.Expr{"b": {PostgreSQL: "a"}}, Down: map[string]migrate.Expr{"a": {SQL: "b"}}}}}, migrate.MySQL, `no expression for new column "b"`},
	}
	for i, c := range cases {
		err := c.m.Validate(c.d)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("case %d: %v, want %q", i, err, c.want)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.10.0", "1.9.3", 1}, {"v2", "2.0.0", 0}, {"2.0.0-rc1", "2.0.0", -1}, {"1.2", "1.2.1", -1}, {"abc", "abd", -1},
	} {
		if got := migrate.CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestPhaseHelpers(t *testing.T) {
	if migrate.PhaseBackfilled.ReadNew() || !migrate.PhaseReadNew.ReadNew() || !migrate.PhaseComplete.ReadNew() || migrate.PhaseRollingBack.ReadNew() {
		t.Fatal("ReadNew")
	}
	if !migrate.PhaseBackfilled.WriteOld() || migrate.PhaseReadNew.WriteOld() || migrate.PhaseNone.WriteNew() || !migrate.PhaseExpanded.WriteNew() {
		t.Fatal("WriteOld/WriteNew")
	}
}
