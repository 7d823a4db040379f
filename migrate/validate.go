package migrate

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	nameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,47}$`)
	// typeRe is the whole grammar of a column type: a name, words from
	// typeWords, an optional (n) or (n, m), an optional [], and words from
	// typeWords again.
	typeRe = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)((?: +[A-Za-z_]+)*) *(\( *[0-9]{1,9} *(?:, *[0-9]{1,9} *)?\))? *(\[ *\])?((?: +[A-Za-z_]+)*)$`)
)

// typeWords are the words a type may have besides its name.
var typeWords = map[string]bool{"PRECISION": true, "VARYING": true, "WITH": true, "WITHOUT": true, "TIME": true, "ZONE": true,
	"UNSIGNED": true, "SIGNED": true, "ZEROFILL": true, "LARGE": true, "OBJECT": true, "CHARACTER": true, "CHAR": true, "BINARY": true}

// validType reports whether s is a column type by the grammar of Column.Type.
func validType(s string) bool {
	m := typeRe.FindStringSubmatch(s)
	if m == nil || len(s) > 100 {
		return false
	}
	for _, w := range append(strings.Fields(m[2]), strings.Fields(m[5])...) {
		if !typeWords[strings.ToUpper(w)] {
			return false
		}
	}
	return true
}

// identOK reports whether s can be an identifier: 1 to 63 bytes, no NUL,
// and not containing the dollar quote that delimits trigger bodies.
func identOK(s string) bool {
	return s != "" && len(s) <= 63 && !strings.ContainsRune(s, 0) && !strings.Contains(strings.ToLower(s), "$baton$")
}

// Validate checks m for dialect d: names, types, defaults, and the
// operations the dialect cannot do safely. Errors are *ValidationError
// (wrapping ErrInvalid) or wrap ErrUnsupported.
func (m *Migration) Validate(d Dialect) error {
	if !nameRe.MatchString(m.Name) {
		return &ValidationError{Path: "name", Reason: fmt.Sprintf("%q: want letters, digits and '_', starting with a letter or '_', at most 48 bytes", m.Name)}
	}
	if len(m.Operations) == 0 {
		return &ValidationError{Migration: m.Name, Path: "operations", Reason: "no operations"}
	}
	for i, op := range m.Operations {
		path := fmt.Sprintf("operations[%d].%s", i, op.Kind())
		if err := validateOp(d, op); err != nil {
			if ve, ok := err.(*ValidationError); ok {
				ve.Migration = m.Name
				ve.Path = path + ve.Path
				return ve
			}
			return fmt.Errorf("migrate: migration %q at %s: %w", m.Name, path, err)
		}
	}
	return nil
}

func verr(path, format string, args ...any) error {
	return &ValidationError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

func checkIdent(path, s string) error {
	if !identOK(s) {
		return verr(path, "identifier %q: want 1 to 63 bytes, without NUL and without the reserved quote $baton$", s)
	}
	return nil
}

func checkColumn(d Dialect, path string, c Column, adding bool) error {
	if err := checkIdent(path+".name", c.Name); err != nil {
		return err
	}
	if !validType(c.Type) {
		return verr(path+".type", "type %q of column %q: %s", c.Type, c.Name, typeHelp)
	}
	if c.Default != "" {
		if _, err := constantSQL(d, c.Default); err != nil {
			return verr(path+".default", "default %q of column %q: %v; add the column nullable and compute values with a transform's backfill", c.Default, c.Name, err)
		}
	}
	if adding && c.NotNull && c.Default == "" {
		return verr(path, "column %q is NOT NULL without a default: existing rows would fail; add it nullable, backfill, then SetNotNull", c.Name)
	}
	return nil
}

// typeHelp says what a type may be.
const typeHelp = "want a type name, an optional (n) or (n, m), an optional [] and modifiers such as unsigned or with time zone, nothing else"

var numberRe = regexp.MustCompile(`^[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?$`)

// constantSQL returns the SQL of the constant s, a string, a number
// (optionally signed), TRUE, FALSE or NULL, as read with dialect d's
// lexical rules, re-emitted from its value rather than passed through:
// a string is re-quoted with ” escapes, and refused if it holds a
// backslash (whose meaning depends on server settings such as MySQL's
// NO_BACKSLASH_ESCAPES).
func constantSQL(d Dialect, s string) (string, error) {
	toks := tokenize(d, s)
	sign := ""
	if len(toks) == 2 && toks[0].kind == tokPunct && (toks[0].text == "-" || toks[0].text == "+") {
		sign, toks = toks[0].text, toks[1:]
		if toks[0].kind != tokNumber {
			return "", fmt.Errorf("not a constant literal")
		}
	}
	if len(toks) != 1 {
		return "", fmt.Errorf("not a constant literal (one string, number, TRUE, FALSE or NULL)")
	}
	t := toks[0]
	switch t.kind {
	case tokNumber:
		if !numberRe.MatchString(t.text) {
			return "", fmt.Errorf("not a number")
		}
		return sign + t.text, nil
	case tokString:
		raw := t.text
		if !strings.HasPrefix(raw, "'") || !strings.HasSuffix(raw, "'") || len(raw) < 2 {
			return "", fmt.Errorf("only plain '...' strings are accepted")
		}
		if strings.Contains(raw, `\`) {
			return "", fmt.Errorf("a backslash in a string default is ambiguous across server settings")
		}
		v := strings.ReplaceAll(raw[1:len(raw)-1], "''", "'")
		return quoteString(lexRules{}, v), nil
	case tokIdent:
		switch u := t.upper(); u {
		case "TRUE", "FALSE", "NULL":
			return u, nil
		}
	}
	return "", fmt.Errorf("not a constant literal (one string, number, TRUE, FALSE or NULL)")
}

func validateOp(d Dialect, op Operation) error {
	switch o := op.(type) {
	case CreateTable:
		if err := checkIdent(".table", o.Table); err != nil {
			return err
		}
		if len(o.Columns) == 0 {
			return verr(".columns", "table %q has no columns", o.Table)
		}
		pks := 0
		for i, c := range o.Columns {
			if err := checkColumn(d, fmt.Sprintf(".columns[%d]", i), c, false); err != nil {
				return err
			}
			if c.PrimaryKey {
				pks++
			}
		}
		if pks > 1 {
			return verr(".columns", "table %q: at most one column may be primary_key", o.Table)
		}
	case AddColumn:
		if err := checkIdent(".table", o.Table); err != nil {
			return err
		}
		return checkColumn(d, ".column", o.Column, true)
	case CreateIndex:
		if err := checkIdent(".table", o.Table); err != nil {
			return err
		}
		if err := checkIdent(".name", o.Name); err != nil {
			return err
		}
		if len(o.Columns) == 0 {
			return verr(".columns", "index %q has no columns", o.Name)
		}
		for i, c := range o.Columns {
			if err := checkIdent(fmt.Sprintf(".columns[%d]", i), c); err != nil {
				return err
			}
		}
	case Transform:
		return validateTransform(d, o)
	case RenameColumn:
		for p, s := range map[string]string{".table": o.Table, ".from": o.From, ".to": o.To} {
			if err := checkIdent(p, s); err != nil {
				return err
			}
		}
		if o.From == o.To {
			return verr(".to", "from and to are both %q", o.From)
		}
		if o.Type != "" && !validType(o.Type) {
			return verr(".type", "type %q: %s", o.Type, typeHelp)
		}
	case ChangeType:
		for p, s := range map[string]string{".table": o.Table, ".column": o.Column, ".to": o.To} {
			if err := checkIdent(p, s); err != nil {
				return err
			}
		}
		if !validType(o.Type) {
			return verr(".type", "type %q: %s", o.Type, typeHelp)
		}
		for _, e := range []Expr{o.Up, o.Down} {
			if strings.Contains(e.For(d), "$baton$") {
				return verr("", "expression %q contains the reserved quote $baton$", e.For(d))
			}
		}
	case SetNotNull:
		if !d.impl().notNull().supported {
			return fmt.Errorf("%w: %s cannot add NOT NULL to an existing column without rebuilding the table", ErrUnsupported, d)
		}
		if err := checkIdent(".table", o.Table); err != nil {
			return err
		}
		return checkIdent(".column", o.Column)
	case AddForeignKey:
		if !d.impl().foreignKey().supported {
			return fmt.Errorf("%w: %s cannot add a foreign key to an existing table", ErrUnsupported, d)
		}
		for p, s := range map[string]string{".table": o.Table, ".name": o.Name, ".ref_table": o.RefTable} {
			if err := checkIdent(p, s); err != nil {
				return err
			}
		}
		if len(o.Columns) == 0 || len(o.Columns) != len(o.RefColumns) {
			return verr(".columns", "foreign key %q: want as many columns as ref_columns, at least one", o.Name)
		}
	case DropColumn:
		if err := checkIdent(".table", o.Table); err != nil {
			return err
		}
		return checkIdent(".column", o.Column)
	case DropTable:
		return checkIdent(".table", o.Table)
	case RawSQL:
		if strings.TrimSpace(o.Up) == "" {
			return verr(".up", "empty SQL")
		}
	default:
		return verr("", "unknown operation type %T", op)
	}
	return nil
}

func validateTransform(d Dialect, o Transform) error {
	if err := checkIdent(".table", o.Table); err != nil {
		return err
	}
	if o.Sync != SyncTriggers && o.Sync != SyncApplication {
		return verr(".sync", "unknown sync mode %q (want \"\" for triggers or %q)", o.Sync, SyncApplication)
	}
	if len(o.Add) == 0 {
		return verr(".add", "no new columns")
	}
	for i, c := range o.Add {
		if err := checkColumn(d, fmt.Sprintf(".add[%d]", i), c, false); err != nil {
			return err
		}
		if c.PrimaryKey {
			return verr(fmt.Sprintf(".add[%d]", i), "column %q: a transform's new column cannot be the primary key", c.Name)
		}
		if o.Up[c.Name].For(d) == "" {
			return verr(".up", "no expression for new column %q", c.Name)
		}
	}
	if len(o.Up) != len(o.Add) {
		return verr(".up", "want one expression per new column (%d), have %d", len(o.Add), len(o.Up))
	}
	if len(o.Down) == 0 {
		return verr(".down", "no expression for the old columns: old code would read stale values written by new code")
	}
	for col, e := range o.Down {
		if err := checkIdent(".down", col); err != nil {
			return err
		}
		if e.For(d) == "" {
			return verr(".down", "empty expression for old column %q", col)
		}
	}
	for _, m := range []map[string]Expr{o.Up, o.Down} {
		for col, e := range m {
			if strings.Contains(e.For(d), "$baton$") || !identOK(col) {
				return verr("", "column %q or its expression contains the reserved quote $baton$", col)
			}
		}
	}
	for i, c := range o.Key {
		if err := checkIdent(fmt.Sprintf(".key[%d]", i), c); err != nil {
			return err
		}
	}
	for i, c := range o.Drop {
		if _, ok := o.Down[c]; !ok {
			return verr(fmt.Sprintf(".drop[%d]", i), "column %q is dropped but has no down expression", c)
		}
	}
	return nil
}
