package migrate

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The tokenizer below is deliberately small. It recognises what the
// expression rewriter and the linter need and nothing more:
//   - unquoted identifiers and keywords (letters, digits, _ and $);
//   - quoted identifiers: "x" (all dialects), `x` (MySQL, SQLite), [x] (SQLite);
//   - string literals: 'x' with '' escapes, E'x' and $tag$x$tag$ on PostgreSQL,
//     backslash escapes on MySQL;
//   - numbers, punctuation and operators (one token per character except the
//     multi-character operators listed in ops);
//   - comments (-- to end of line, /* */, and # on MySQL) are skipped.
// It does not parse; statement splitting is at top-level semicolons.

type tokKind int

const (
	tokIdent  tokKind = iota // unquoted identifier or keyword
	tokQIdent                // quoted identifier; Text holds the unquoted name
	tokString                // string literal; Text holds the raw literal
	tokNumber
	tokPunct
)

type token struct {
	kind  tokKind
	text  string // for tokIdent: as written; for tokQIdent: the name
	start int    // byte offset in the input
	end   int
}

// upper is the keyword form of an unquoted identifier ("" for other kinds).
func (t token) upper() string {
	if t.kind != tokIdent {
		return ""
	}
	return strings.ToUpper(t.text)
}

// name is the identifier a token designates: unquoted identifiers fold to
// lower case (PostgreSQL's rule; MySQL and SQLite compare case-insensitively
// for columns anyway).
func (t token) name() string {
	switch t.kind {
	case tokIdent:
		return strings.ToLower(t.text)
	case tokQIdent:
		return t.text
	}
	return ""
}

var ops = []string{"::", "<=>", "<>", "<=", ">=", "!=", "||", "->>", "->"}

func tokenize(d Dialect, s string) []token { return lexTokens(d.impl().lex(), s) }

// lexTokens tokenizes s with the lexical rules lx of one dialect.
func lexTokens(lx lexRules, s string) []token {
	var out []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '#' && lx.hashComments:
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				i = len(s)
			} else {
				i += j + 4
			}
		case c == '\'' || ((c == 'E' || c == 'e') && lx.escapeStrings && i+1 < len(s) && s[i+1] == '\''):
			start := i
			if c != '\'' {
				i++
			}
			backslash := lx.backslashEscapes || c != '\''
			i++
			for i < len(s) {
				if backslash && s[i] == '\\' {
					i += 2
					continue
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						i += 2
						continue
					}
					i++
					break
				}
				i++
			}
			out = append(out, token{kind: tokString, text: s[start:min(i, len(s))], start: start, end: min(i, len(s))})
		case c == '$' && lx.dollarQuotes && dollarTag(s[i:]) != "":
			tag := dollarTag(s[i:])
			start := i
			j := strings.Index(s[i+len(tag):], tag)
			if j < 0 {
				i = len(s)
			} else {
				i += len(tag) + j + len(tag)
			}
			out = append(out, token{kind: tokString, text: s[start:i], start: start, end: i})
		case c == '"' || (c == '`' && lx.backticks) || (c == '[' && lx.brackets):
			closer := c
			if c == '[' {
				closer = ']'
			}
			start := i
			i++
			var b strings.Builder
			for i < len(s) {
				if s[i] == closer {
					if closer != ']' && i+1 < len(s) && s[i+1] == closer {
						b.WriteByte(closer)
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			out = append(out, token{kind: tokQIdent, text: b.String(), start: start, end: i})
		case c >= '0' && c <= '9':
			start := i
			for i < len(s) && (isIdentByte(s[i]) || s[i] == '.') {
				i++
			}
			out = append(out, token{kind: tokNumber, text: s[start:i], start: start, end: i})
		case isIdentStart(s[i:]):
			start := i
			for i < len(s) {
				r, n := utf8.DecodeRuneInString(s[i:])
				if r == '_' || r == '$' || unicode.IsLetter(r) || unicode.IsDigit(r) {
					i += n
					continue
				}
				break
			}
			out = append(out, token{kind: tokIdent, text: s[start:i], start: start, end: i})
		default:
			start := i
			n := 1
			for _, op := range ops {
				if strings.HasPrefix(s[i:], op) {
					n = len(op)
					break
				}
			}
			i += n
			out = append(out, token{kind: tokPunct, text: s[start:i], start: start, end: i})
		}
	}
	return out
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isIdentStart(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return r == '_' || unicode.IsLetter(r)
}

// dollarTag returns "$tag$" if s starts with a PostgreSQL dollar quote.
func dollarTag(s string) string {
	if len(s) < 2 || s[0] != '$' {
		return ""
	}
	for i := 1; i < len(s); i++ {
		if s[i] == '$' {
			return s[:i+1]
		}
		if !isIdentByte(s[i]) || (i == 1 && s[i] >= '0' && s[i] <= '9') {
			return ""
		}
	}
	return ""
}

// blocks tracks the nesting of BEGIN ... END blocks (trigger and procedure
// bodies), inside which a semicolon does not end the statement. The runner
// and the linter split with it, so that they agree on where statements end.
type blocks struct{ depth int }

// step accounts for toks[i]; start is the index of the current statement's
// first token.
func (b *blocks) step(toks []token, i, start int) {
	switch toks[i].upper() {
	case "BEGIN":
		// BEGIN opens a block only inside a statement (CREATE TRIGGER ...
		// BEGIN, or nested in a body); a statement that starts with BEGIN
		// starts a transaction.
		if i > start {
			b.depth++
		}
	case "CASE":
		// Inside a body CASE ... END (expression) and CASE ... END CASE
		// (statement) both nest; the CASE of END CASE opens nothing.
		if b.depth > 0 && (i == 0 || toks[i-1].upper() != "END") {
			b.depth++
		}
	case "END":
		// END IF, END LOOP, END WHILE and END REPEAT close statements that
		// opened nothing.
		if b.depth > 0 && (i+1 == len(toks) || !compoundEnd[toks[i+1].upper()]) {
			b.depth--
		}
	}
}

var compoundEnd = map[string]bool{"IF": true, "LOOP": true, "WHILE": true, "REPEAT": true}

// splitStatements splits SQL text at top-level semicolons. Semicolons inside
// strings, quoted identifiers, comments and BEGIN ... END blocks (trigger and
// procedure bodies) do not split. Each statement keeps the comments before
// it; a trailing piece with no tokens is dropped.
func splitStatements(d Dialect, s string) []string {
	toks := tokenize(d, s)
	var out []string
	start, startTok := 0, 0
	var b blocks
	for i, t := range toks {
		b.step(toks, i, startTok)
		if t.kind == tokPunct && t.text == ";" && b.depth == 0 {
			if stmt := strings.TrimSpace(s[start:t.start]); stmt != "" {
				out = append(out, stmt)
			}
			start, startTok = t.end, i+1
		}
	}
	if stmt := strings.TrimSpace(s[start:]); stmt != "" && len(tokenize(d, stmt)) > 0 {
		out = append(out, stmt)
	}
	return out
}

// rewriteColumns returns expr with every reference to a column of cols
// replaced by repl(column). cols maps a lookup key to the column's real name;
// build it with columnIndex. A reference is an identifier token (quoted or
// not) whose name is a column, that is not preceded by '.' (already
// qualified) and not followed by '(' (a function call). String literals and
// comments are left alone.
func rewriteColumns(d Dialect, expr string, cols map[string]string, repl func(string) string) string {
	toks := tokenize(d, expr)
	var b strings.Builder
	last := 0
	for i, t := range toks {
		if t.kind != tokIdent && t.kind != tokQIdent {
			continue
		}
		key := t.name()
		if !d.impl().lex().caseSensitive {
			key = strings.ToLower(t.text)
		}
		real, ok := cols[key]
		if !ok {
			continue
		}
		if i > 0 && toks[i-1].kind == tokPunct && toks[i-1].text == "." {
			continue
		}
		if i+1 < len(toks) && toks[i+1].kind == tokPunct && toks[i+1].text == "(" && t.kind == tokIdent {
			continue
		}
		b.WriteString(expr[last:t.start])
		b.WriteString(repl(real))
		last = t.end
	}
	b.WriteString(expr[last:])
	return b.String()
}

// columnIndex builds the lookup map rewriteColumns needs: PostgreSQL column
// names are case-sensitive, MySQL and SQLite ones are not.
func columnIndex(d Dialect, names []string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		if d.impl().lex().caseSensitive {
			m[n] = n
		} else {
			m[strings.ToLower(n)] = n
		}
	}
	return m
}

// matchParen returns the index of the ')' closing the '(' at toks[i], or
// the last token when it is not closed.
func matchParen(toks []token, i int) int {
	depth := 0
	for j := i; j < len(toks); j++ {
		switch toks[j].text {
		case "(":
			if toks[j].kind == tokPunct {
				depth++
			}
		case ")":
			if toks[j].kind == tokPunct {
				depth--
				if depth == 0 {
					return j
				}
			}
		}
	}
	return len(toks) - 1
}

// namesColumn reports whether the SQL text expr refers to column col (an
// identifier token of that name that is not a function call).
func namesColumn(d Dialect, expr, col string) bool {
	toks := tokenize(d, expr)
	for i, t := range toks {
		if t.kind != tokIdent && t.kind != tokQIdent {
			continue
		}
		if i+1 < len(toks) && toks[i+1].text == "(" && t.kind == tokIdent {
			continue
		}
		if t.text == col || (!d.impl().lex().caseSensitive || t.kind == tokIdent) && strings.EqualFold(t.text, col) {
			return true
		}
	}
	return false
}
