package scan

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The corpus (testdata/corpus) is a tree of realistic files with markers
// instead of secrets, so that the repository holds no token:
//
//	⟦S:gen⟧   a planted secret, generated at test time by gen
//	⟦T:name⟧  a planted MCP tool input asking for a credential (the name)
//	⟦L:gen⟧   a look-alike generated at test time (UUID, hash, ...)
//	⟦L=text⟧  a look-alike written as is (reference, placeholder, example)
//
// The test fills the markers into t.TempDir(), scans it and compares the
// findings with the planted secrets: recall (planted secrets found) and
// false positives (findings that are not a planted secret).

var markRE = regexp.MustCompile(`⟦([STL])([:=])([^⟧]*)⟧`)

type planted struct {
	file      string
	line      int
	col, end  int // columns (1-based, characters) of the value
	kind, gen string
	found     int
}

const (
	alnum    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upperNum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	hexDigit = "0123456789abcdef"
	b64url   = alnum + "-_"
	b64std   = alnum + "+/"
)

type gen struct{ r *rand.Rand }

func (g gen) s(alpha string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alpha[g.r.IntN(len(alpha))]
	}
	return string(b)
}

func (g gen) n(lo, hi int) int { return lo + g.r.IntN(hi-lo+1) }

func (g gen) digits(n int) string { return g.s("0123456789", n) }

// password makes a human-chosen-looking strong password: words, digits and
// symbols, or a random draw.
func (g gen) password(urlSafe bool) string {
	syms := "!#%&*+?@^~"
	if urlSafe {
		syms = "_~-."
	}
	if g.r.IntN(2) == 0 {
		words := []string{"Tiger", "maple", "Orbit", "crisp", "Falcon", "ember", "Quartz", "velvet", "Nimbus", "harbor", "Pixel", "lantern"}
		w1, w2 := words[g.r.IntN(len(words))], words[g.r.IntN(len(words))]
		return w1 + string(syms[g.r.IntN(len(syms))]) + g.digits(g.n(2, 4)) + w2 + string(syms[g.r.IntN(len(syms))]) + g.s(upperNum, 2)
	}
	return g.s(alnum+syms, g.n(12, 24))
}

func (g gen) jwt() string {
	enc := base64.RawURLEncoding.EncodeToString
	hdr := enc([]byte(`{"alg":"HS256","typ":"JWT"}`))
	if g.r.IntN(2) == 0 {
		hdr = enc([]byte(`{"alg":"RS256","kid":"` + g.s(alnum, 12) + `","typ":"JWT"}`))
	}
	body := enc([]byte(fmt.Sprintf(`{"sub":"%s","iat":%d,"exp":%d,"scope":"mcp:tools"}`, g.s(alnum, 10), 1760000000+g.r.IntN(1e6), 1770000000+g.r.IntN(1e6))))
	return hdr + "." + body + "." + g.s(b64url, 43)
}

func (g gen) uuid() string {
	h := g.s(hexDigit, 32)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:]
}

// generate returns the value of a generator; for multi-line values the
// lines are joined with sep (a YAML block indent, "\\n" inside JSON).
func (g gen) generate(name string) string {
	kind, arg, _ := strings.Cut(name, "/")
	switch kind {
	case "github-pat":
		return "ghp_" + g.s(alnum, 36)
	case "github-fine":
		return "github_pat_" + "11" + g.s(upperNum, 20) + "_" + g.s(alnum, 59)
	case "github-app":
		return "ghs_" + g.s(alnum, 36)
	case "github-oauth":
		return "gho_" + g.s(alnum, 36)
	case "gitlab":
		return "glpat-" + g.s(alnum, 4) + g.digits(2) + g.s(b64url, 14)
	case "slack-bot":
		return "xoxb-" + g.digits(g.n(10, 12)) + "-" + g.digits(13) + "-" + g.s(alnum, 24)
	case "slack-user":
		return "xoxp-" + g.digits(11) + "-" + g.digits(11) + "-" + g.digits(13) + "-" + g.s(hexDigit, 32)
	case "slack-webhook":
		return "T" + g.s(upperNum, 8) + "/B" + g.s(upperNum, 10) + "/" + g.s(alnum, 24)
	case "aws-key-id":
		return "AKIA" + g.s(upperNum, 16)
	case "aws-secret":
		return g.s(b64std, 40)
	case "openai":
		if g.r.IntN(2) == 0 {
			return "sk-proj-" + g.s(b64url, 74) + "T3BlbkFJ" + g.s(b64url, 74)
		}
		return "sk-" + g.s(alnum, 20) + "T3BlbkFJ" + g.s(alnum, 20)
	case "anthropic":
		return "sk-ant-api03-" + g.s(b64url, 93) + "AA"
	case "stripe-live":
		return "sk_live_51" + g.s(alnum, 97)
	case "stripe-restricted":
		return "rk_live_51" + g.s(alnum, 97)
	case "stripe-test":
		return "sk_test_51" + g.s(alnum, 97)
	case "google-api":
		return "AIza" + "Sy" + g.s(b64url, 33)
	case "google-oauth":
		return "GOCSPX-" + g.s(b64url, 28)
	case "notion":
		if g.r.IntN(2) == 0 {
			return "secret_" + g.s(alnum, 43)
		}
		return "ntn_" + g.digits(11) + g.s(alnum, 35)
	case "linear":
		return "lin_api_" + g.s(alnum, 40)
	case "sentry":
		return "sntryu_" + g.s(hexDigit, 64)
	case "hf":
		return "hf_" + g.s("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 34)
	case "npm":
		return "npm_" + g.s(alnum, 36)
	case "jwt":
		return g.jwt()
	case "pem":
		lines := []string{"-----BEGIN RSA PRIVATE KEY-----"}
		for range 6 {
			lines = append(lines, g.s(b64std, 64))
		}
		lines = append(lines, "-----END RSA PRIVATE KEY-----")
		sep := "\n"
		if arg == "json" {
			sep = `\n`
		} else if arg != "" {
			n, _ := strconv.Atoi(arg)
			sep = "\n" + strings.Repeat(" ", n)
		}
		return strings.Join(lines, sep)
	case "password":
		return g.password(arg == "url")
	case "hex":
		n, _ := strconv.Atoi(arg)
		return g.s(hexDigit, n)
	case "b64":
		n, _ := strconv.Atoi(arg)
		return g.s(b64std, n)
	case "alnum":
		n, _ := strconv.Atoi(arg)
		return g.s(alnum, n)
	case "prefixed":
		// A vendor key with a short prefix: tvly-..., BSA..., pplx-...
		return arg + g.s(alnum, 32)
	case "uuid":
		return g.uuid()
	case "sha256":
		return g.s(hexDigit, 64)
	case "sha1":
		return g.s(hexDigit, 40)
	case "objectid":
		return g.s(hexDigit, 24)
	case "integrity":
		return "sha512-" + g.s(b64std, 86) + "=="
	case "int":
		return g.digits(g.n(6, 12))
	case "pk-live":
		return "pk_live_51" + g.s(alnum, 97)
	case "ssh-pub":
		return "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + g.s(b64std, 43) + " deploy@ci"
	}
	panic("corpus: unknown generator " + name)
}

// fillCorpus writes the corpus into dir with fresh values and returns what
// was planted.
func fillCorpus(t testing.TB, src, dir string, seed uint64) (secrets, lookalikes []*planted) {
	g := gen{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	err := filepath.WalkDir(src, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if strings.HasSuffix(rel, ".md") && filepath.Dir(rel) == "." {
			return nil // the corpus README
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		target := filepath.Join(dir, strings.TrimSuffix(rel, ".tmpl"))
		var out strings.Builder
		text := string(b)
		last := 0
		for _, m := range markRE.FindAllStringSubmatchIndex(text, -1) {
			out.WriteString(text[last:m[0]])
			last = m[1]
			typ, sep, arg := text[m[2]:m[3]], text[m[4]:m[5]], text[m[6]:m[7]]
			val := arg
			if sep == ":" && typ != "T" {
				val = g.generate(arg)
			}
			sofar := out.String()
			line := strings.Count(sofar, "\n") + 1
			col := utf8.RuneCountInString(sofar[strings.LastIndexByte(sofar, '\n')+1:]) + 1
			first, _, _ := strings.Cut(val, "\n")
			p := &planted{file: target, line: line, col: col, end: col + utf8.RuneCountInString(first), kind: typ, gen: arg}
			if typ == "L" {
				lookalikes = append(lookalikes, p)
			} else {
				secrets = append(secrets, p)
			}
			out.WriteString(val)
		}
		out.WriteString(text[last:])
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, []byte(out.String()), 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return secrets, lookalikes
}

func TestCorpus(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if s := os.Getenv("ROTATOR_CORPUS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ROTATOR_CORPUS_SEED=%q: want a number", s)
		}
		seeds = []uint64{n}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			secrets, lookalikes := fillCorpus(t, "testdata/corpus", dir, seed)
			res, err := Scan(context.Background(), []string{dir}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			byFormat := map[string]int{}
			var tools, configs int
			for _, p := range secrets {
				byFormat[filepath.Ext(p.file)]++
				if p.kind == "T" {
					tools++
				}
				if strings.Contains(p.file, "mcp-clients") {
					configs++
				}
			}
			var fps []Finding
			for _, f := range res.Findings {
				matched := false
				for _, p := range secrets {
					if p.file == f.File && p.line == f.Line && f.Column >= p.col && f.Column <= p.end {
						p.found++
						if p.found == 1 {
							matched = true
						}
						break
					}
				}
				if !matched {
					fps = append(fps, f)
				}
			}
			found := 0
			for _, p := range secrets {
				if p.found > 0 {
					found++
				} else {
					rel, _ := filepath.Rel(dir, p.file)
					t.Logf("missed: %s:%d:%d (%s %s)", rel, p.line, p.col, p.kind, p.gen)
				}
			}
			for _, f := range fps {
				rel, _ := filepath.Rel(dir, f.File)
				t.Logf("false positive: %s:%d:%d %s %s", rel, f.Line, f.Column, f.Rule, f.Preview)
			}
			recall := float64(found) / float64(len(secrets))
			t.Logf("corpus seed %d: %d planted secrets (%d MCP tool inputs, %d in MCP client configs), %d look-alikes, %d files; recall %.1f%% (%d/%d), %d false positive(s)",
				seed, len(secrets), tools, configs, len(lookalikes), res.Files, 100*recall, found, len(secrets), len(fps))
			fmt.Printf("corpus seed %d: recall %.1f%% (%d/%d), false positives %d, look-alikes %d\n", seed, 100*recall, found, len(secrets), len(fps), len(lookalikes))
			if len(secrets) < 60 || tools < 10 || configs < 10 || len(lookalikes) < 60 {
				t.Errorf("corpus too small: %d secrets (want 60), %d tool inputs (want 10), %d in client configs (want 10), %d look-alikes (want 60)", len(secrets), tools, configs, len(lookalikes))
			}
			if recall < 0.98 {
				t.Errorf("recall %.1f%% is below 98%%", 100*recall)
			}
			if len(fps) > 2 {
				t.Errorf("%d false positives, at most 2 allowed", len(fps))
			}
			// No output holds a planted value.
			for _, f := range res.Findings {
				if f.Value() != "" && len(f.Value()) >= 8 && strings.Contains(f.Preview+f.Fix+f.Fingerprint, f.Value()) {
					t.Errorf("%s:%d: the preview or fix holds the secret", f.File, f.Line)
				}
			}
		})
	}
}
