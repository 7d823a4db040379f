package migrate

import (
	"slices"
	"testing"
)

// The runner (splitStatements) and the linter (splitWithLines) must cut SQL
// text at the same places: a semicolon inside a trigger or procedure body
// does not end the statement, nested BEGIN ... END blocks and IF/LOOP/CASE
// statements included.
func TestSplittersAgree(t *testing.T) {
	trigger := "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN\n" +
		"  IF NEW.a IS NULL THEN SET NEW.a = 1; END IF;\n" +
		"  BEGIN SET NEW.b = 2; END;\n" +
		"  CASE WHEN NEW.c > 0 THEN SET NEW.d = 1; ELSE SET NEW.d = 0; END CASE;\n" +
		"  SET NEW.e = CASE WHEN NEW.a = 1 THEN 'one' ELSE 'other' END;\n" +
		"  WHILE NEW.f < 3 DO SET NEW.f = NEW.f + 1; END WHILE;\n" +
		"END"
	for _, c := range []struct {
		name string
		text string
		want []string
	}{
		{"plain", "ALTER TABLE a ADD b INT;\nUPDATE a SET b = 1", []string{"ALTER TABLE a ADD b INT", "UPDATE a SET b = 1"}},
		{"transaction", "BEGIN; UPDATE a SET b = 1; COMMIT;", []string{"BEGIN", "UPDATE a SET b = 1", "COMMIT"}},
		{"trigger", trigger + ";\nSELECT 1;", []string{trigger, "SELECT 1"}},
		{"strings", "INSERT INTO a VALUES ('x;y'); SELECT 'BEGIN'", []string{"INSERT INTO a VALUES ('x;y')", "SELECT 'BEGIN'"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := splitStatements(MySQL, c.text); !slices.Equal(got, c.want) {
				t.Errorf("splitStatements:\n got %q\nwant %q", got, c.want)
			}
			var got []string
			for _, s := range splitWithLines(MySQL, c.text) {
				got = append(got, s.text)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("splitWithLines:\n got %q\nwant %q", got, c.want)
			}
		})
	}
}
