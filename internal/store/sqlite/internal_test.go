package sqlite

import (
	"reflect"
	"testing"
)

func TestPositional(t *testing.T) {
	args := []any{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}
	for in, want := range map[string]struct {
		sql  string
		args []any
	}{
		"SELECT 1":                                 {"SELECT 1", args},
		"WHERE a = $1 AND b = $12":                 {"WHERE a = ? AND b = ?", []any{"a", "l"}},
		"VALUES ($2, $1, $2)":                      {"VALUES (?, ?, ?)", []any{"b", "a", "b"}},
		`WHERE a = '$1' AND "c$2" = $3`:            {`WHERE a = '$1' AND "c$2" = ?`, []any{"c"}},
		"WHERE a = 'it''s $1' AND b = $2":          {"WHERE a = 'it''s $1' AND b = ?", []any{"b"}},
		"SELECT json_extract(x, '$.a') FROM t, $1": {"SELECT json_extract(x, '$.a') FROM t, ?", []any{"a"}},
		"$": {"$", []any{}},
	} {
		sql, got, err := positional(in, args)
		if err != nil {
			t.Errorf("positional(%q): %v", in, err)
			continue
		}
		if sql != want.sql || !reflect.DeepEqual(got, want.args) && len(got)+len(want.args) > 0 {
			t.Errorf("positional(%q) = %q, %v; want %q, %v", in, sql, got, want.sql, want.args)
		}
	}
	if _, _, err := positional("WHERE a = $13", args); err == nil {
		t.Error("placeholder beyond the arguments: no error")
	}
}

func TestConstraint(t *testing.T) {
	for in, want := range map[string]string{
		"constraint failed: UNIQUE constraint failed: runs.credential_id (2067)":              "runs.credential_id",
		"constraint failed: UNIQUE constraint failed: run_steps.run_id, run_steps.seq (1555)": "run_steps.run_id, run_steps.seq",
		"FOREIGN KEY constraint failed": "FOREIGN KEY constraint failed",
	} {
		if got := constraint(in); got != want {
			t.Errorf("constraint(%q) = %q, want %q", in, got, want)
		}
	}
}
