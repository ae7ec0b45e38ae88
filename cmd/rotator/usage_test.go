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
	}{
		"unknown flag":                 {[]string{"credentials", "list", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		"unknown command":              {[]string{"rotatee"}, "unknown command"},
		"credentials show without id":  {[]string{"credentials", "show"}, "accepts 1 arg"},
		"runs show without id":         {[]string{"runs", "show"}, "accepts 1 arg"},
		"rotate without selection":     {[]string{"rotate"}, "no credentials selected"},
		"rotate --wait w/o selection":  {[]string{"rotate", "--wait"}, "no credentials selected"},
		"emergency without reason":     {[]string{"rotate", "notes-api-key", "--emergency"}, "--emergency needs --reason"},
		"revoke-first w/o emergency":   {[]string{"rotate", "notes-api-key", "--revoke-first"}, "--revoke-first"},
		"bad selector":                 {[]string{"rotate", "--selector", "team"}, "--selector"},
		"credentials list -o yaml":     {[]string{"credentials", "list", "-o", "yaml"}, `-o "yaml"`},
		"credentials show -o yaml":     {[]string{"credentials", "show", "notes-api-key", "-o", "yaml"}, `-o "yaml"`},
		"runs list -o yaml":            {[]string{"runs", "list", "-o", "yaml"}, `-o "yaml"`},
		"runs show -o yaml":            {[]string{"runs", "show", "01ABC", "-o", "yaml"}, `-o "yaml"`},
		"rotate -o yaml":               {[]string{"rotate", "notes-api-key", "-o", "yaml"}, `-o "yaml"`},
		"apply -o yaml":                {[]string{"apply", "-f", quickstartPath, "-o", "yaml"}, `-o "yaml"`},
		"version -o yaml":              {[]string{"version", "-o", "yaml"}, `-o "yaml"`},
		"apply without -f":             {[]string{"apply"}, `"file" not set`},
		"runs list --state bogus":      {[]string{"runs", "list", "--state", "bogus"}, "bogus"},
		"runs list --since bogus":      {[]string{"runs", "list", "--since", "bogus"}, "--since"},
		"bad --log-level":              {[]string{"--log-level", "loud", "version"}, "--log-level"},
		"rotate --concurrency 0":       {[]string{"rotate", "--all", "--concurrency", "0"}, "--concurrency"},
		"flag needs an argument":       {[]string{"credentials", "list", "-o"}, "flag needs an argument"},
		"credentials list with an arg": {[]string{"credentials", "list", "extra"}, "unknown command"},
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
				{[]string{"credentials", "show", "nope"}, 1, []string{`credential "nope" not found`, "rotator credentials list"}},
				{[]string{"credentials", "show", "nope", "-o", "json"}, 1, []string{`credential "nope" not found`}},
				{[]string{"runs", "show", "01NOPE"}, 3, []string{`run "01NOPE" not found`, "rotator runs list"}},
				// Unknown ids in a rotate selection are a usage error, caught
				// before any run is created.
				{[]string{"rotate", "nope", "--wait"}, 2, []string{`credential "nope"`, "not found"}},
				{[]string{"rotate", "--selector", "team=nobody", "--wait"}, 1, []string{"matches no credential"}},
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

	r = c.must(t, 0, "--help")
	for _, s := range []string{"Usage:", "apply", "credentials", "rotate", "runs", "serve", "Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error."} {
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
