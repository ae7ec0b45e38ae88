package execplugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/settings"
)

func TestCheckHost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho '{}'\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("plugin", 0o755)
	noExec := write("not-executable", 0o644)
	cases := map[string]struct {
		s     settings.Map
		field string // "" for no finding
		want  string
	}{
		"absolute executable":  {settings.Map{"command": []any{ok, "--flag"}}, "", ""},
		"bare name in PATH":    {settings.Map{"command": []any{"sh"}}, "", ""},
		"relative to dir":      {settings.Map{"command": []any{"./plugin"}, "dir": dir}, "", ""},
		"missing":              {settings.Map{"command": []any{filepath.Join(dir, "nope")}}, "command[0]", "does not exist; correct command[0]"},
		"missing relative":     {settings.Map{"command": []any{"./nope"}, "dir": dir}, "command[0]", "relative paths are resolved against dir"},
		"not in PATH":          {settings.Map{"command": []any{"rotator-no-such-plugin"}}, "command[0]", "is not in PATH here"},
		"not executable":       {settings.Map{"command": []any{noExec}}, "command[0]", "(mode 0644) may not be executed by user"},
		"a directory":          {settings.Map{"command": []any{dir}}, "command[0]", "is not a regular file (it is a directory)"},
		"dir missing":          {settings.Map{"command": []any{ok}, "dir": filepath.Join(dir, "gone")}, "dir", "does not exist here"},
		"dir is a file":        {settings.Map{"command": []any{ok}, "dir": ok}, "dir", "is not a directory"},
		"invalid: not checked": {settings.Map{"command": "not a list"}, "", ""},
	}
	for name, tc := range cases {
		errs := CheckHost(tc.s)
		switch {
		case tc.field == "" && len(errs) > 0:
			t.Errorf("%s: findings %v, want none", name, errs)
		case tc.field != "" && (len(errs) != 1 || errs[0].Field != tc.field || !strings.Contains(errs[0].Msg, tc.want)):
			t.Errorf("%s: findings %v, want one on %s containing %q", name, errs, tc.field, tc.want)
		}
	}
}
