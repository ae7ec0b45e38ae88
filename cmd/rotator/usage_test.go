package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		args []string
		// says is part of the message on stderr.
		says string
		// help is the command whose --help the last line points to.
		help string
	}{
		"unknown flag":                 {[]string{"credentials", "list", "--no-such-flag"}, "unknown flag: --no-such-flag", "rotator credentials list"},
		"unknown command":              {[]string{"rotatee"}, "unknown command", "rotator"},
		"unknown subcommand":           {[]string{"runs", "frobnicate"}, "unknown command", "rotator runs"},
		"credentials show without id":  {[]string{"credentials", "show"}, "accepts 1 arg", "rotator credentials show"},
		"runs show without id":         {[]string{"runs", "show"}, "accepts 1 arg", "rotator runs show"},
		"rotate without selection":     {[]string{"rotate"}, "no credentials selected", "rotator rotate"},
		"rotate --wait w/o selection":  {[]string{"rotate", "--wait"}, "no credentials selected", "rotator rotate"},
		"emergency without reason":     {[]string{"rotate", "notes-api-key", "--emergency"}, "--emergency needs --reason", "rotator rotate"},
		"revoke-first w/o emergency":   {[]string{"rotate", "notes-api-key", "--revoke-first"}, "--revoke-first", "rotator rotate"},
		"bad selector":                 {[]string{"rotate", "--selector", "team"}, "--selector", "rotator rotate"},
		"credentials list -o xml":      {[]string{"credentials", "list", "-o", "xml"}, `-o "xml": use table, wide, json or yaml`, "rotator credentials list"},
		"credentials show -o xml":      {[]string{"credentials", "show", "notes-api-key", "-o", "xml"}, `-o "xml": use text, json or yaml`, "rotator credentials show"},
		"runs list -o xml":             {[]string{"runs", "list", "-o", "xml"}, `-o "xml"`, "rotator runs list"},
		"runs show -o xml":             {[]string{"runs", "show", "01ABC", "-o", "xml"}, `-o "xml": use text, json, yaml or md`, "rotator runs show"},
		"audit list -o xml":            {[]string{"audit", "list", "-o", "xml"}, `-o "xml"`, "rotator audit list"},
		"audit verify -o xml":          {[]string{"audit", "verify", "-o", "xml"}, `-o "xml"`, "rotator audit verify"},
		"rotate -o xml":                {[]string{"rotate", "notes-api-key", "-o", "xml"}, `-o "xml"`, "rotator rotate"},
		"apply -o xml":                 {[]string{"apply", "-f", quickstartPath, "-o", "xml"}, `-o "xml"`, "rotator apply"},
		"version -o xml":               {[]string{"version", "-o", "xml"}, `-o "xml"`, "rotator version"},
		"keys rotate -o xml":           {[]string{"keys", "rotate", "-o", "xml"}, `-o "xml"`, "rotator keys rotate"},
		"runbooks check -o xml":        {[]string{"runbooks", "check", "-o", "xml"}, `-o "xml"`, "rotator runbooks check"},
		"-q with -o json":              {[]string{"credentials", "list", "-q", "-o", "json"}, "-q prints ids only", "rotator credentials list"},
		"report -o FILE (old form)":    {[]string{"report", "-o", "report.html"}, "write to a file with --out report.html", "rotator report"},
		"report -o xml":                {[]string{"report", "-o", "xml"}, `-o "xml": use md, html, json or csv`, "rotator report"},
		"report --format disagrees":    {[]string{"report", "--format", "html", "-o", "json"}, "--format html and -o json disagree", "rotator report"},
		"audit list --limit -1":        {[]string{"audit", "list", "--limit", "-1"}, "--limit -1", "rotator audit list"},
		"apply without -f":             {[]string{"apply"}, `"file" not set`, "rotator apply"},
		"runs list --state bogus":      {[]string{"runs", "list", "--state", "bogus"}, "bogus", "rotator runs list"},
		"runs list --since bogus":      {[]string{"runs", "list", "--since", "bogus"}, "--since", "rotator runs list"},
		"bad --log-level":              {[]string{"--log-level", "loud", "version"}, "--log-level", "rotator version"},
		"rotate --concurrency 0":       {[]string{"rotate", "--all", "--concurrency", "0"}, "--concurrency", "rotator rotate"},
		"flag needs an argument":       {[]string{"credentials", "list", "-o"}, "flag needs an argument", "rotator credentials list"},
		"credentials list with an arg": {[]string{"credentials", "list", "extra"}, "unknown command", "rotator credentials list"},
		"completion of no shell":       {[]string{"completion", "tcsh"}, "unknown command", "rotator completion"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, "sqlite")
			r := c.must(t, 2, tc.args...)
			if !strings.Contains(r.stderr, tc.says) {
				t.Errorf("stderr does not say %q:\n%s", tc.says, r)
			}
			if !strings.HasPrefix(r.stderr, "rotator: ") {
				t.Errorf("stderr does not start with 'rotator: ':\n%s", r)
			}
			if hint := "\nRun '" + tc.help + " --help' for usage.\n"; !strings.HasSuffix(r.stderr, hint) {
				t.Errorf("stderr does not end with %q:\n%s", hint, r)
			}
			if r.stdout != "" {
				t.Errorf("stdout is not empty on a usage error:\n%s", r)
			}
			// A usage error is found before anything is opened or written.
			if fileExists(c.path("rotator.db")) {
				t.Error("a usage error created rotator.db")
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	for _, store := range storeKinds {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, store)
			c.must(t, 0, "apply", "-f", quickstartPath)
			cases := []struct {
				args []string
				code int
				says []string
			}{
				{[]string{"credentials", "show", "nope"}, exitNotFound, []string{`credential "nope" not found`, "rotator credentials list"}},
				{[]string{"credentials", "show", "nope", "-o", "json"}, exitNotFound, []string{`credential "nope" not found`}},
				{[]string{"runs", "show", "01NOPE"}, exitNotFound, []string{`run "01NOPE" not found`, "rotator runs list"}},
				{[]string{"runs", "show", "01NOPE", "-o", "yaml"}, exitNotFound, []string{`run "01NOPE" not found`}},
				// Unknown ids in a rotate selection are caught before any run
				// is created.
				{[]string{"rotate", "nope", "--wait"}, exitNotFound, []string{`credential "nope"`, "not found", "rotator credentials list"}},
				{[]string{"rotate", "notes-api-key", "nope", "--dry-run"}, exitNotFound, []string{`credential "nope"`, "not found"}},
				{[]string{"rotate", "--selector", "team=nobody", "--wait"}, exitNotFound, []string{"matches no credential"}},
			}
			for _, tc := range cases {
				r := c.must(t, tc.code, tc.args...)
				for _, s := range tc.says {
					if !strings.Contains(r.stderr, s) {
						t.Errorf("stderr does not say %q:\n%s", s, r)
					}
				}
				if r.stdout != "" {
					t.Errorf("stdout is not empty:\n%s", r)
				}
				// Not found is no usage error: no pointer to --help.
				if strings.Contains(r.stderr, "--help") {
					t.Errorf("a not-found error points to --help:\n%s", r)
				}
			}
			r := c.must(t, 0, "runs", "list", "-o", "json")
			if runs := array(t, decodeObject(t, r.stdout, "runs"), "runs"); len(runs) != 0 {
				t.Errorf("failed selections created runs: %v", runs)
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")

	r := c.must(t, 0, "version")
	if !strings.HasPrefix(r.stdout, "rotator dev (go1.") {
		t.Errorf("version: %q", r.stdout)
	}
	r = c.must(t, 0, "version", "-o", "json")
	var v map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v["version"] != "dev" || !strings.HasPrefix(v["go"], "go1.") {
		t.Errorf("version -o json: %v %q", err, r.stdout)
	}

	r = c.must(t, 0, "version", "-o", "yaml")
	if !strings.Contains(r.stdout, "version: dev\n") {
		t.Errorf("version -o yaml: %q", r.stdout)
	}
	r2 := c.must(t, 0, "--version")
	if r2.stdout != c.must(t, 0, "version").stdout {
		t.Errorf("--version prints %q, version prints %q", r2.stdout, c.must(t, 0, "version").stdout)
	}

	r = c.must(t, 0, "--help")
	for _, s := range []string{"Usage:", "apply", "credentials", "rotate", "runs", "serve", "completion", "--version",
		"Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error,\n3 not found"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("--help does not mention %q:\n%s", s, r.stdout)
		}
	}
	for _, cmd := range [][]string{{"rotate", "--help"}, {"apply", "-h"}, {"help", "runs", "show"}} {
		r = c.must(t, 0, cmd...)
		if !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: no usage:\n%s", cmd, r)
		}
	}
	if fileExists(c.path("rotator.db")) {
		t.Error("version or help created rotator.db")
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")

	// A port that nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/healthz"
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	r := c.must(t, 1, "health", "--url", dead, "--timeout", "5s")
	if !strings.Contains(r.stderr, "probing "+dead) {
		t.Errorf("stderr does not name the URL:\n%s", r)
	}

	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer ok.Close()
	r = c.must(t, 0, "health", "--url", ok.URL+"/healthz")
	if !strings.Contains(r.stdout, "200 OK") {
		t.Errorf("stdout: %q", r.stdout)
	}

	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()
	r = c.must(t, 1, "health", "--url", unavailable.URL+"/readyz")
	if !strings.Contains(r.stderr, "503") {
		t.Errorf("stderr does not report the status:\n%s", r)
	}
}
