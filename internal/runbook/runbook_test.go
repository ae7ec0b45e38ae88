package runbook

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const sample = `---
id: generated
version: 2
owner: platform-team
reviewed: 2025-01-15
tags: [a, b]
---

# Generated secrets

Intro.

## Rotation

Steps.

## Rotation

Again.

### Step 1: mint the new value!

` + "```sh" + `
# not a heading
rotator rotate x
` + "```" + `

## Emergency {#emergency-rotation}

<a id="manual-steps"></a>
<a name="legacy"></a>

Setext Title
============

Another one
-----------

## [Linked](https://example.com) ` + "`code`" + ` _emphasis_ __strong__ snake_case

## Ünïcode Straße ##

  ## Indented heading

- list item
---
`

func TestAnchors(t *testing.T) {
	t.Parallel()
	got := Anchors([]byte(sample))
	want := []string{
		"generated-secrets",
		"rotation",
		"rotation-1",
		"step-1-mint-the-new-value",
		"emergency-rotation",
		"emergency",
		"manual-steps",
		"legacy",
		"setext-title",
		"another-one",
		"linked-code-emphasis-strong-snake_case",
		"ünïcode-straße",
		"indented-heading",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Anchors:\n got %q\nwant %q", got, want)
	}
}

func TestSlug(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"Rotation":                    "rotation",
		"Rotate a leaked key, now!":   "rotate-a-leaked-key-now",
		"  Trim me  ":                 "trim-me",
		"Two  spaces":                 "two--spaces",
		"OAuth2 client-credentials":   "oauth2-client-credentials",
		"What's `rotator apply`?":     "whats-rotator-apply",
		"snake_case stays":            "snake_case-stays",
		"1. Numbered (with parens)":   "1-numbered-with-parens",
		"Émergency":                   "émergency",
		"&&&":                         "",
		"Postgres: role/alternating.": "postgres-rolealternating",
	}
	for in, want := range cases {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			if got := Slug(in); got != want {
				t.Fatalf("Slug(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

func TestAnchorsDuplicates(t *testing.T) {
	t.Parallel()
	// A heading whose slug collides with a generated suffix, as in
	// github-slugger: "a", "a" → "a-1", then "a-1" → "a-1-1".
	got := Anchors([]byte("# A\n# A\n# A-1\n# A\n"))
	want := []string{"a", "a-1", "a-1-1", "a-2"}
	if !slices.Equal(got, want) {
		t.Fatalf("Anchors = %q, want %q", got, want)
	}
}

func TestAnchorsUnterminatedFenceAndNoHeadings(t *testing.T) {
	t.Parallel()
	if got := Anchors([]byte("```\n# inside\n")); len(got) != 0 {
		t.Fatalf("Anchors in an unterminated fence = %q, want none", got)
	}
	if got := Anchors(nil); len(got) != 0 {
		t.Fatalf("Anchors(nil) = %q", got)
	}
}

func TestFrontMatter(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		"sample": {in: sample, want: map[string]string{
			"id": "generated", "version": "2", "owner": "platform-team", "reviewed": "2025-01-15", "tags": "a, b",
		}},
		"none":            {in: "# Title\n", want: nil},
		"empty":           {in: "---\n---\n# x\n", want: map[string]string{}},
		"crlf and dots":   {in: "---\r\nid: x\r\n...\r\n# T\r\n", want: map[string]string{"id": "x"}},
		"null dropped":    {in: "---\nid: x\nowner:\n---\n", want: map[string]string{"id": "x"}},
		"unterminated":    {in: "---\nid: x\n# T\n", wantErr: true},
		"not a mapping":   {in: "---\n- a\n---\n", wantErr: true},
		"nested mapping":  {in: "---\nowner: {team: x}\n---\n", wantErr: true},
		"invalid yaml":    {in: "---\nid: [x\n---\n", wantErr: true},
		"dashes mid-file": {in: "# T\n---\nid: x\n---\n", want: nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := FrontMatter([]byte(tc.in))
			if tc.wantErr {
				if !errors.Is(err, ErrFrontMatter) {
					t.Fatalf("FrontMatter error = %v, want ErrFrontMatter", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FrontMatter: %v", err)
			}
			if (got == nil) != (tc.want == nil) || len(got) != len(tc.want) {
				t.Fatalf("FrontMatter = %#v, want %#v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("FrontMatter[%q] = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	repoBook := filepath.Join(root, "runbooks", "generated.md")
	write(t, repoBook, sample)
	localBook := filepath.Join(root, "local", "runbooks", "generated.md")
	write(t, localBook, "## Rotation\n")
	examples := filepath.Join(root, "examples", "deep")
	if err := os.MkdirAll(examples, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(sample))
	digest := "sha256:" + hex.EncodeToString(sum[:])

	t.Run("found in a parent directory", func(t *testing.T) {
		t.Parallel()
		r, err := Resolve(examples, "runbooks/generated.md#rotation-1")
		if err != nil {
			t.Fatal(err)
		}
		want := Ref{Path: "runbooks/generated.md", File: repoBook, Anchor: "rotation-1", Digest: digest}
		if r != want {
			t.Fatalf("Resolve = %+v, want %+v", r, want)
		}
		if r.String() != "runbooks/generated.md#rotation-1" {
			t.Fatalf("String = %q", r.String())
		}
	})
	t.Run("base directory wins over parents", func(t *testing.T) {
		t.Parallel()
		r, err := Resolve(filepath.Join(root, "local"), "runbooks/generated.md#rotation")
		if err != nil {
			t.Fatal(err)
		}
		if r.File != localBook {
			t.Fatalf("File = %s, want %s", r.File, localBook)
		}
	})
	t.Run("absolute path without anchor", func(t *testing.T) {
		t.Parallel()
		r, err := Resolve("/nonexistent", repoBook)
		if err != nil {
			t.Fatal(err)
		}
		if r.File != repoBook || r.Anchor != "" || r.Digest != digest || r.Path != repoBook {
			t.Fatalf("Resolve = %+v", r)
		}
	})
	t.Run("relative base directory", func(t *testing.T) {
		t.Parallel()
		// The package directory has no runbooks/generated.md above it that
		// this test controls, so check only that a relative base works.
		r, err := Resolve(".", "runbook_test.go")
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsAbs(r.File) {
			t.Fatalf("File %q is not absolute", r.File)
		}
	})
	t.Run("missing file says where it looked", func(t *testing.T) {
		t.Parallel()
		_, err := Resolve(examples, "runbooks/nope.md#rotation")
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("error = %v, want ErrNotFound", err)
		}
		for _, s := range []string{"runbooks/nope.md", examples, "parent"} {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("error %q does not mention %q", err, s)
			}
		}
	})
	t.Run("missing absolute file", func(t *testing.T) {
		t.Parallel()
		_, err := Resolve(root, filepath.Join(root, "nope.md"))
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("error = %v, want ErrNotFound", err)
		}
	})
	t.Run("a directory is not a runbook", func(t *testing.T) {
		t.Parallel()
		_, err := Resolve(root, "runbooks")
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("error = %v, want ErrNotFound", err)
		}
	})
	t.Run("empty path", func(t *testing.T) {
		t.Parallel()
		_, err := Resolve(root, "#rotation")
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("error = %v, want ErrNotFound", err)
		}
	})
	t.Run("missing anchor lists anchors", func(t *testing.T) {
		t.Parallel()
		_, err := Resolve(root, "runbooks/generated.md#Rotation")
		if !errors.Is(err, ErrAnchorNotFound) {
			t.Fatalf("error = %v, want ErrAnchorNotFound", err)
		}
		msg := err.Error()
		for _, s := range []string{"#Rotation", "generated-secrets", "rotation-1", "did you mean #rotation?", "and 3 more"} {
			if !strings.Contains(msg, s) {
				t.Fatalf("error %q does not mention %q", msg, s)
			}
		}
		if strings.Contains(msg, "indented-heading") {
			t.Fatalf("error %q lists more than %d anchors", msg, maxListedAnchors)
		}
	})
	t.Run("oversized file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		write(t, filepath.Join(dir, "huge.md"), "# Rotation\n"+strings.Repeat("x", MaxSize))
		_, err := Resolve(dir, "huge.md#rotation")
		if err == nil || !strings.Contains(err.Error(), "larger than 8 MiB") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("anchor in a file without headings", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		write(t, filepath.Join(dir, "plain.md"), "just text\n")
		_, err := Resolve(dir, "plain.md#x")
		if !errors.Is(err, ErrAnchorNotFound) || !strings.Contains(err.Error(), "no heading") {
			t.Fatalf("error = %v", err)
		}
	})
}

func TestSplit(t *testing.T) {
	t.Parallel()
	cases := map[string][2]string{
		"runbooks/a.md#rotation": {"runbooks/a.md", "rotation"},
		"runbooks/a.md":          {"runbooks/a.md", ""},
		"a.md#x#y":               {"a.md", "x#y"},
		"#x":                     {"", "x"},
	}
	for in, want := range cases {
		p, a := Split(in)
		if p != want[0] || a != want[1] {
			t.Errorf("Split(%q) = %q, %q; want %q, %q", in, p, a, want[0], want[1])
		}
	}
}
