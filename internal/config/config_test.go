package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/providers"
	provreg "github.com/rotatorhq/rotator/providers/registry"
	targetreg "github.com/rotatorhq/rotator/targets/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Canary secrets are assembled at run time so that this file does not trip
// secret scanners. No error message may ever contain one.
var (
	canaryGitHub  = "gh" + "p_" + "C4n4ryT0k3nAbCdEfGhIjKlMnOpQrStUv123"
	canaryAWS     = "AK" + "IA" + "Q7XR2LMZ9VKP4TNB"
	canaryRandom  = "Zq8Xv2Lm4Np6Rt9Ws3Yu5Ka7Hd1Gf0Jc2"
	canaryPlain   = "hunter2-canary-password"
	canarySlack   = "xo" + "xb-2048613579-Qz7Wm3Kp9Lx2Vn8R"
	canaryOpenAI  = "sk" + "-proj-" + "C4n4ry0p3nA1k3yAbCdEfGh1234"
	allCanaries   = []string{canaryGitHub, canaryAWS, canaryRandom, canaryPlain, canarySlack, canaryOpenAI}
	testdataDir   = "testdata"
	header        = "providers:\n  gen:\n    type: generated\ntargets:\n  env:\n    type: file\n    path: ./run/x.env\ncredentials:\n"
	validCredBody = "    consumer: mcp-server-notes\n    provider: gen\n    max_age: 1h\n    runbook: runbooks/generated.md#rotation\n"
)

func init() {
	if len(canaryGitHub) != 40 {
		panic(fmt.Sprintf("GitHub canary has %d characters, want 40", len(canaryGitHub)))
	}
}

// parseString parses src as testdata/test.yaml (so runbooks resolve in
// testdata/runbooks) with runbook checks on.
func parseString(src string) (*Config, error) {
	return Parse(filepath.Join(testdataDir, "test.yaml"), []byte(src), Options{CheckRunbooks: true})
}

// errorList returns the list inside an *Errors, failing the test for any
// other outcome.
func errorList(t *testing.T, cfg *Config, err error) []Error {
	t.Helper()
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse = %v, %v; want *Errors", cfg, err)
	}
	if cfg != nil {
		t.Fatalf("Parse returned a Config with errors")
	}
	if len(errs.List) == 0 {
		t.Fatalf("*Errors is empty")
	}
	return errs.List
}

// markedLine returns the 1-based line of src that carries the "# <-" marker.
func markedLine(t *testing.T, src string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, "# <-") {
			return i + 1
		}
	}
	t.Fatalf("no # <- marker in\n%s", src)
	return 0
}

func assertNoCanary(t *testing.T, s string) {
	t.Helper()
	for _, c := range allCanaries {
		if strings.Contains(s, c) {
			t.Fatalf("output contains canary secret %q:\n%s", c, s)
		}
	}
}

func TestDesignExampleLoads(t *testing.T) {
	t.Parallel()
	path := filepath.Join(testdataDir, "design.yaml")
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.File != path {
		t.Errorf("File = %q, want %q", cfg.File, path)
	}
	if got := cfg.ProviderNames(); !slices.Equal(got, []string{"gen", "okta-m2m", "pg-main"}) {
		t.Errorf("providers = %q", got)
	}
	if got := cfg.TargetNames(); !slices.Equal(got, []string{"local-env", "sm-github"}) {
		t.Errorf("targets = %q", got)
	}
	okta, _ := cfg.Provider("okta-m2m")
	if okta.Type != "generated" || okta.Settings["length"] != 48 || okta.Settings["alphabet"] != "base64url" || okta.Line != 4 {
		t.Errorf("okta-m2m = %+v", okta)
	}
	if _, hasType := okta.Settings["type"]; hasType {
		t.Errorf("settings hold the type key")
	}
	env, _ := cfg.Target("local-env")
	if env.Type != "file" || env.Settings["mode"] != "0640" || env.Settings["path"] != "./run/mcp.env" {
		t.Errorf("local-env = %+v", env)
	}
	if len(cfg.Credentials) != 3 {
		t.Fatalf("%d credentials, want 3", len(cfg.Credentials))
	}

	gh, ok := cfg.Credential("github-mcp-token")
	if !ok {
		t.Fatal("github-mcp-token missing")
	}
	wantPolicy := store.Policy{MaxAge: time.Hour, RenewBefore: 15 * time.Minute, Grace: 10 * time.Minute}
	if gh.Consumer != "mcp-server-github" || gh.Provider != "okta-m2m" || gh.Owner != "platform-team" ||
		!slices.Equal(gh.Scope, []string{"repo:read", "issues:write"}) ||
		gh.Labels["team"] != "platform" || gh.Labels["env"] != "prod" || len(gh.Labels) != 2 ||
		gh.Policy.MaxAge != wantPolicy.MaxAge || gh.Policy.RenewBefore != wantPolicy.RenewBefore ||
		gh.Policy.Grace != wantPolicy.Grace || gh.Policy.Window != nil || gh.Line != 29 {
		t.Errorf("github-mcp-token = %+v", gh)
	}
	if want := []store.TargetBinding{{Target: "sm-github", Key: "token"}, {Target: "local-env", Key: "GITHUB_TOKEN"}}; !slices.Equal(gh.Targets, want) {
		t.Errorf("targets = %+v, want %+v", gh.Targets, want)
	}
	absBook, _ := filepath.Abs(filepath.Join(testdataDir, "runbooks", "oauth2-client-credentials.md"))
	if r := gh.RunbookRef; r.Path != "runbooks/oauth2-client-credentials.md" || r.Anchor != "rotation" ||
		r.File != absBook || !strings.HasPrefix(r.Digest, "sha256:") || len(r.Digest) != 7+64 {
		t.Errorf("runbook ref = %+v", r)
	}
	if gh.Runbook != "runbooks/oauth2-client-credentials.md#rotation" {
		t.Errorf("runbook = %q", gh.Runbook)
	}

	db, _ := cfg.Credential("reports-db-password")
	if db.Policy.Schedule != "0 3 * * *" || db.Policy.MaxAge != 720*time.Hour || db.Policy.Grace != time.Hour ||
		db.Policy.Window == nil || *db.Policy.Window != (store.Window{Start: "02:00", End: "05:00", Timezone: "Europe/Berlin"}) ||
		db.Settings["length"] != 24 || !slices.Equal(db.Scope, []string{"SELECT on reporting.*"}) || len(db.Targets) != 0 {
		t.Errorf("reports-db-password = %+v", db)
	}
	notes, _ := cfg.Credential("notes-api-key")
	if notes.Policy.MaxAge != 30*24*time.Hour || notes.Policy.RenewAt != 0.8 || notes.Policy.Schedule != "CRON_TZ=Europe/Berlin 0 3 * * 1" ||
		notes.RunbookRef.Anchor != "" || notes.RunbookRef.Digest == "" {
		t.Errorf("notes-api-key = %+v", notes)
	}

	// "gen" is defined but unused.
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Field != "providers.gen" || cfg.Warnings[0].Line != 12 {
		t.Errorf("warnings = %+v", cfg.Warnings)
	}
}

func TestDesignVerbatimHasNoSecretErrors(t *testing.T) {
	t.Parallel()
	// The example exactly as DESIGN.md §12 prints it: its secrets are
	// references and every type it uses is registered, so it parses; the
	// only finding is the provider it defines and never uses.
	path := filepath.Join(testdataDir, "design-verbatim.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(path, data, Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Field != "providers.gen" {
		t.Errorf("warnings = %v, want only the unused provider gen", cfg.Warnings)
	}
	for _, typ := range []string{"oauth2-client-credentials", "postgres-role"} {
		if _, ok := provreg.Lookup(typ); !ok {
			t.Errorf("provider type %s is not registered", typ)
		}
	}
	if _, ok := targetreg.Lookup("aws-secretsmanager"); !ok {
		t.Error("target type aws-secretsmanager is not registered")
	}
}

func TestThreeErrorsReportedTogether(t *testing.T) {
	t.Parallel()
	path := filepath.Join(testdataDir, "three-errors.yaml")
	cfg, err := Load(path)
	list := errorList(t, cfg, err)
	want := []struct {
		line  int
		field string
		msg   string
	}{
		{9, "credentials[0].max_age", `invalid duration "10x"; use a value such as 30s`},
		{13, "credentials[1].provider", `unknown provider "nope"; defined providers are gen`},
		{20, "credentials[2].schedule", `invalid schedule "61 * * * *"`},
	}
	if len(list) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(list), len(want), err)
	}
	for i, w := range want {
		e := list[i]
		if e.File != path || e.Line != w.line || e.Field != w.field || !strings.Contains(e.Msg, w.msg) {
			t.Errorf("error %d = %v; want %s:%d: %s: ...%s...", i, e, path, w.line, w.field, w.msg)
		}
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], path+":9: credentials[0].max_age: invalid duration") {
		t.Errorf("Error() =\n%s", err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		src   string
		field string
		msg   string
	}{
		"unknown top-level key": {
			src:   header + "  - id: a\n" + validCredBody + "provider: {}  # <-\n",
			field: "provider", msg: "unknown key; valid top-level keys are credentials, delivery, notify, providers, targets",
		},
		"unknown credential key": {
			src:   header + "  - id: a\n" + validCredBody + "    max-age: 1h  # <-\n",
			field: "credentials[0].max-age", msg: "unknown key; valid keys are consumer, grace, id, labels, max_age",
		},
		"document not a mapping": {
			src:   "- a  # <-\n- b\n",
			field: "", msg: "the document must be a mapping with the keys credentials, delivery, notify, providers, targets, got a list",
		},
		"providers not a mapping": {
			src:   "providers: [a, b]  # <-\n",
			field: "providers", msg: "must be a mapping of name to settings, got a list",
		},
		"provider not a mapping": {
			src:   "providers:\n  gen: generated  # <-\n",
			field: "providers.gen", msg: "must be a mapping with a type and its settings, got a string",
		},
		"provider without type": {
			src:   "providers:\n  gen:  # <-\n    length: 40\n",
			field: "providers.gen.type", msg: "type is required",
		},
		"provider name not a slug": {
			src:   "providers:\n  Gen_1:  # <-\n    type: generated\n",
			field: "providers.Gen_1", msg: "must be a slug",
		},
		"unknown provider type": {
			src:   "providers:\n  gen:\n    type: vault  # <-\n",
			field: "providers.gen.type", msg: `unknown provider type "vault"; registered types are ` + strings.Join(provreg.Types(), ", "),
		},
		"unknown target type": {
			src:   "targets:\n  sm:\n    type: s3  # <-\n",
			field: "targets.sm.type", msg: `unknown target type "s3"; registered types are ` + strings.Join(targetreg.Types(), ", "),
		},
		"provider setting at its line": {
			src:   "providers:\n  gen:\n    type: generated\n    length: 5  # <-\n",
			field: "providers.gen.length", msg: "must be between 16 and 4096, got 5",
		},
		"provider unknown setting": {
			src:   "providers:\n  gen:\n    type: generated\n    lenght: 40  # <-\n",
			field: "providers.gen.lenght", msg: "unknown field; valid fields are",
		},
		"target missing setting at its name": {
			src:   "targets:\n  env:  # <-\n    type: file\n",
			field: "targets.env.path", msg: "is required",
		},
		"target bad format": {
			src:   "targets:\n  env:\n    type: file\n    path: x.env\n    format: yaml  # <-\n",
			field: "targets.env.format", msg: "must be one of dotenv, json, raw",
		},
		"target world-readable mode": {
			src:   "targets:\n  env:\n    type: file\n    path: x.env\n    mode: 0644  # <-\n",
			field: "targets.env.mode", msg: "world-accessible",
		},
		"credential settings at their line": {
			src:   header + "  - id: a\n" + validCredBody + "    settings:\n      length: 1  # <-\n",
			field: "credentials[0].settings.length", msg: "must be between 16 and 4096",
		},
		"credential settings not a mapping": {
			src:   header + "  - id: a\n" + validCredBody + "    settings: [1]  # <-\n",
			field: "credentials[0].settings", msg: "must be a mapping of provider settings, got a list",
		},
		"credentials not a list": {
			src:   header + "  id: a  # <-\n",
			field: "credentials", msg: "must be a list of credentials",
		},
		"credential not a mapping": {
			src:   header + "  - a  # <-\n",
			field: "credentials[0]", msg: "must be a mapping with id, consumer",
		},
		"scope not a list": {
			src:   header + "  - id: a\n" + validCredBody + "    scope: repo:read  # <-\n",
			field: "credentials[0].scope", msg: "must be a list of strings such as [repo:read, issues:write], got a string",
		},
		"scope item not a string": {
			src:   header + "  - id: a\n" + validCredBody + "    scope:\n      - {a: b}  # <-\n",
			field: "credentials[0].scope[0]", msg: "must be a string, got a mapping",
		},
		"id missing": {
			src:   header + "  - consumer: x  # <-\n    provider: gen\n    max_age: 1h\n    runbook: runbooks/generated.md\n",
			field: "credentials[0].id", msg: "id is required",
		},
		"id not a slug": {
			src:   header + "  - id: Notes_Key  # <-\n" + validCredBody,
			field: "credentials[0].id", msg: "must be a slug",
		},
		"id not a value": {
			src:   header + "  - id: [a]  # <-\n" + validCredBody,
			field: "credentials[0].id", msg: "must be a single value, got a list",
		},
		"duplicate id": {
			src:   header + "  - id: a\n" + validCredBody + "  - id: a  # <-\n" + validCredBody,
			field: "credentials[1].id", msg: `duplicate credential id "a"; first defined at line 9`,
		},
		"consumer missing": {
			src:   header + "  - id: a  # <-\n    provider: gen\n    max_age: 1h\n    runbook: runbooks/generated.md\n",
			field: "credentials[0].consumer", msg: "consumer is required: name the MCP server or client",
		},
		"consumer empty": {
			src:   header + "  - id: a\n    consumer: \"\"  # <-\n    provider: gen\n    max_age: 1h\n    runbook: runbooks/generated.md\n",
			field: "credentials[0].consumer", msg: "must not be empty",
		},
		"unknown provider": {
			src:   header + "  - id: a\n    consumer: x\n    provider: okta  # <-\n    max_age: 1h\n    runbook: runbooks/generated.md\n",
			field: "credentials[0].provider", msg: `unknown provider "okta"; defined providers are gen`,
		},
		"provider missing": {
			src:   header + "  - id: a  # <-\n    consumer: x\n    max_age: 1h\n    runbook: runbooks/generated.md\n",
			field: "credentials[0].provider", msg: "provider is required",
		},
		"bad duration": {
			src:   header + "  - id: a\n" + validCredBody + "    grace: 5 minutes  # <-\n",
			field: "credentials[0].grace", msg: `invalid duration "5 minutes"; use a value such as 30s, 15m, 1h, 1h30m or 30d`,
		},
		"duration without unit": {
			src:   header + "  - id: a\n    consumer: x\n    provider: gen\n    max_age: 3600  # <-\n    runbook: runbooks/generated.md\n",
			field: "credentials[0].max_age", msg: `invalid duration "3600"`,
		},
		"max_age missing": {
			src:   header + "  - id: a  # <-\n    consumer: x\n    provider: gen\n    runbook: runbooks/generated.md\n",
			field: "credentials[0].max_age", msg: "max_age is required",
		},
		"max_age zero": {
			src:   header + "  - id: a\n    consumer: x\n    provider: gen\n    max_age: 0s  # <-\n    runbook: runbooks/generated.md\n",
			field: "credentials[0].max_age", msg: "must be greater than 0",
		},
		"renew_before not below max_age": {
			src:   header + "  - id: a\n" + validCredBody + "    renew_before: 60m  # <-\n",
			field: "credentials[0].renew_before", msg: "must be less than max_age (1h), got 1h",
		},
		"renew_at out of range": {
			src:   header + "  - id: a\n" + validCredBody + "    renew_at: 1.5  # <-\n",
			field: "credentials[0].renew_at", msg: "must be a fraction of max_age between 0 and 1",
		},
		"renew_at with renew_before": {
			src:   header + "  - id: a\n" + validCredBody + "    renew_before: 10m\n    renew_at: 0.5  # <-\n",
			field: "credentials[0].renew_at", msg: "renew_at and renew_before are mutually exclusive",
		},
		"invalid cron": {
			src:   header + "  - id: a\n" + validCredBody + "    schedule: \"0 3 * *\"  # <-\n",
			field: "credentials[0].schedule", msg: `invalid schedule "0 3 * *": expected exactly 5 fields`,
		},
		"unknown descriptor": {
			src:   header + "  - id: a\n" + validCredBody + "    schedule: \"@fortnightly\"  # <-\n",
			field: "credentials[0].schedule", msg: `invalid schedule "@fortnightly"`,
		},
		"cron time zone without schedule": {
			src:   header + "  - id: a\n" + validCredBody + "    schedule: CRON_TZ=Europe/Berlin  # <-\n",
			field: "credentials[0].schedule", msg: "a time zone prefix must be followed by a space",
		},
		"cron bad time zone": {
			src:   header + "  - id: a\n" + validCredBody + "    schedule: CRON_TZ=Mars/Olympus 0 3 * * *  # <-\n",
			field: "credentials[0].schedule", msg: "invalid schedule",
		},
		"every too short": {
			src:   header + "  - id: a\n" + validCredBody + "    schedule: \"@every 10ms\"  # <-\n",
			field: "credentials[0].schedule", msg: "@every needs a duration of at least 1s",
		},
		"schedule never fires": {
			src:   header + "  - id: a\n" + validCredBody + "    schedule: \"0 0 30 2 *\"  # <-\n",
			field: "credentials[0].schedule", msg: "never fires",
		},
		"window bad time": {
			src:   header + "  - id: a\n" + validCredBody + "    window:\n      start: \"25:00\"  # <-\n      end: \"05:00\"\n",
			field: "credentials[0].window.start", msg: `must be a time of day as HH:MM (00:00 to 23:59), got "25:00"`,
		},
		"window bad time zone": {
			src:   header + "  - id: a\n" + validCredBody + "    window:\n      start: \"01:00\"\n      end: \"05:00\"\n      timezone: Mars/Olympus  # <-\n",
			field: "credentials[0].window.timezone", msg: `unknown time zone "Mars/Olympus"; use an IANA name`,
		},
		"window missing end": {
			src:   header + "  - id: a\n" + validCredBody + "    window: {start: \"01:00\"}  # <-\n",
			field: "credentials[0].window.end", msg: "end is required",
		},
		"window empty": {
			src:   header + "  - id: a\n" + validCredBody + "    window: {start: \"01:00\", end: \"01:00\"}  # <-\n",
			field: "credentials[0].window", msg: "the window would be empty",
		},
		"window unknown key": {
			src:   header + "  - id: a\n" + validCredBody + "    window:\n      start: \"01:00\"\n      end: \"02:00\"\n      tz: UTC  # <-\n",
			field: "credentials[0].window.tz", msg: "unknown key; valid keys are end, start, timezone",
		},
		"runbook missing": {
			src:   header + "  - id: a  # <-\n    consumer: x\n    provider: gen\n    max_age: 1h\n",
			field: "credentials[0].runbook", msg: "runbook is required: link the rotation runbook",
		},
		"runbook file missing": {
			src:   header + "  - id: a\n    consumer: x\n    provider: gen\n    max_age: 1h\n    runbook: runbooks/nope.md#rotation  # <-\n",
			field: "credentials[0].runbook", msg: "runbook not found: looked for runbooks/nope.md in ",
		},
		"runbook anchor missing": {
			src:   header + "  - id: a\n    consumer: x\n    provider: gen\n    max_age: 1h\n    runbook: runbooks/generated.md#rotate  # <-\n",
			field: "credentials[0].runbook", msg: "has no anchor #rotate; anchors are generated-secrets-test-fixture, rotation",
		},
		"runbook without path": {
			src:   header + "  - id: a\n    consumer: x\n    provider: gen\n    max_age: 1h\n    runbook: \"#rotation\"  # <-\n",
			field: "credentials[0].runbook", msg: "must name a markdown file",
		},
		"label value not a string": {
			src:   header + "  - id: a\n" + validCredBody + "    labels:\n      tier: 1  # <-\n",
			field: "credentials[0].labels.tier", msg: "label values must be strings, got a number; quote it",
		},
		"labels not a mapping": {
			src:   header + "  - id: a\n" + validCredBody + "    labels: [a]  # <-\n",
			field: "credentials[0].labels", msg: "must be a mapping of strings",
		},
		"unknown target": {
			src:   header + "  - id: a\n" + validCredBody + "    targets:\n      - {target: vault}  # <-\n",
			field: "credentials[0].targets[0].target", msg: `unknown target "vault"; defined targets are env`,
		},
		"binding without target": {
			src:   header + "  - id: a\n" + validCredBody + "    targets:\n      - {key: X}  # <-\n",
			field: "credentials[0].targets[0].target", msg: "target is required",
		},
		"binding bad key": {
			src:   header + "  - id: a\n" + validCredBody + "    targets:\n      - target: env\n        key: 9-lives  # <-\n",
			field: "credentials[0].targets[0].key", msg: "must be a variable name",
		},
		"binding unknown key": {
			src:   header + "  - id: a\n" + validCredBody + "    targets:\n      - target: env\n        name: X  # <-\n",
			field: "credentials[0].targets[0].name", msg: "unknown key; valid keys are key, target",
		},
		"binding duplicate": {
			src:   header + "  - id: a\n" + validCredBody + "    targets:\n      - {target: env, key: X}\n      - {target: env, key: X}  # <-\n",
			field: "credentials[0].targets[1]", msg: "duplicate binding",
		},
		"targets not a list": {
			src:   header + "  - id: a\n" + validCredBody + "    targets: env  # <-\n",
			field: "credentials[0].targets", msg: "must be a list such as [{target: local-env, key: GITHUB_TOKEN}], got a string",
		},
		"duplicate key": {
			src:   header + "  - id: a\n" + validCredBody + "    max_age: 2h  # <-\n",
			field: "credentials[0].max_age", msg: "duplicate key; first defined at line 12",
		},
		"yaml syntax error": {
			src:   "providers: {}\ntargets: x: y  # <-\n",
			field: "", msg: "invalid YAML: mapping values are not allowed in this context",
		},
		"second document": {
			src:   "providers: {}\n---  # <-\ntargets: {}\n",
			field: "", msg: "a second YAML document",
		},
		"type not a value": {
			src:   "providers:\n  gen:\n    type: [generated]  # <-\n",
			field: "providers.gen.type", msg: "must be a type name, got a list",
		},
		"scope entry a provider refuses, at its line": {
			src: "providers:\n  gh:\n    type: github-app\n    app_id: 1\n    installation_id: 2\n    private_key: ${env:GH_APP_KEY}\ncredentials:\n" +
				"  - id: a\n    consumer: x\n    provider: gh\n    max_age: 1h\n    runbook: runbooks/generated.md#rotation\n    scope:\n      - metadata:read\n      - contents:reed  # <-\n",
			field: "credentials[0].scope[1]", msg: `permission contents has no level "reed"; valid levels are read, write`,
		},
		"scope a provider refuses as a whole": {
			src: "providers:\n  gh:\n    type: github-app\n    app_id: 1\n    installation_id: 2\n    private_key: ${env:GH_APP_KEY}\ncredentials:\n" +
				"  - id: a  # <-\n    consumer: x\n    provider: gh\n    max_age: 1h\n    runbook: runbooks/generated.md#rotation\n",
			field: "credentials[0].scope", msg: "is empty; a github-app credential declares the permissions",
		},
		"merge of a scalar": {
			src:   "providers:\n  gen:\n    <<: 3  # <-\n    type: generated\n",
			field: "providers.gen", msg: "a merge key (<<) must name a mapping",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseString(tc.src)
			list := errorList(t, cfg, err)
			line := markedLine(t, tc.src)
			for _, e := range list {
				if e.Line == line && e.Field == tc.field && strings.Contains(e.Msg, tc.msg) {
					if e.File != filepath.Join(testdataDir, "test.yaml") {
						t.Errorf("File = %q", e.File)
					}
					want := fmt.Sprintf("%s:%d: ", e.File, line)
					if !strings.HasPrefix(e.Error(), want) {
						t.Errorf("Error() = %q, want prefix %q", e.Error(), want)
					}
					return
				}
			}
			t.Fatalf("no error at line %d, field %q, containing %q; got:\n%v", line, tc.field, tc.msg, err)
		})
	}
}

func TestLiteralSecrets(t *testing.T) {
	t.Parallel()
	// Each case lists the marked line's expected message fragment, or ""
	// when the document must produce no secret error at all.
	cases := map[string]struct {
		src   string
		field string
		msg   string
	}{
		"github token under client_secret": {
			src:   "providers:\n  gen:\n    type: generated\n    client_secret: " + canaryGitHub + "  # <-\n",
			field: "providers.gen.client_secret",
			msg:   "literal secret in client_secret (it looks like a GitHub personal access token): use a reference such as ${env:NAME}, ${file:/path} or ${aws-sm:secret-id}",
		},
		"plain password under a sensitive key": {
			src:   "targets:\n  env:\n    type: file\n    path: x\n    db_password: " + canaryPlain + "  # <-\n",
			field: "targets.env.db_password", msg: "literal secret in db_password: use a reference",
		},
		"sensitive key deep in settings": {
			src:   "providers:\n  gen:\n    type: generated\n    verify:\n      headers:\n        Authorization: Bearer " + canaryPlain + "  # <-\n",
			field: "providers.gen.verify.headers.Authorization", msg: "literal secret in Authorization",
		},
		"sensitive key in a list": {
			src:   "providers:\n  gen:\n    type: generated\n    api_keys:\n      - " + canaryPlain + "  # <-\n",
			field: "providers.gen.api_keys[0]", msg: "literal secret in api_keys",
		},
		"token under an innocent key": {
			src:   "providers:\n  gen:\n    type: generated\n    prefix: " + canaryAWS + "  # <-\n",
			field: "providers.gen.prefix", msg: "prefix holds what looks like an AWS access key ID",
		},
		"token inside a longer value": {
			src:   header + "  - id: a\n" + validCredBody + "    owner: \"ask " + canarySlack + " on slack\"  # <-\n",
			field: "credentials[0].owner", msg: "owner holds what looks like a Slack bot token",
		},
		"token in a label": {
			src:   header + "  - id: a\n" + validCredBody + "    labels: {note: " + canaryOpenAI + "}  # <-\n",
			field: "credentials[0].labels.note", msg: "note holds what looks like an OpenAI API key",
		},
		"token in a scope list": {
			src:   header + "  - id: a\n" + validCredBody + "    scope: [read, " + canaryGitHub + "]  # <-\n",
			field: "credentials[0].scope[1]", msg: "scope holds what looks like a GitHub personal access token",
		},
		"token as a map key": {
			src:   header + "  - id: a\n" + validCredBody + "    labels:\n      " + canaryGitHub + ": x  # <-\n",
			field: "credentials[0].labels[REDACTED]", msg: "a key looks like a GitHub personal access token",
		},
		"token under an unknown top-level key": {
			src:   "extra:\n  note: " + canaryGitHub + "  # <-\n",
			field: "extra.note", msg: "note holds what looks like a GitHub personal access token",
		},
		"token in a multi-line block": {
			src:   "providers:\n  gen:\n    type: generated\n    ca: |  # <-\n      -----BEGIN RSA " + "PRIVATE KEY-----\n      MIIE\n      -----END RSA PRIVATE KEY-----\n",
			field: "providers.gen.ca", msg: "ca holds what looks like a PEM private key",
		},
		"random value in provider settings": {
			src:   "providers:\n  gen:\n    type: generated\n    prefix: " + canaryRandom + "  # <-\n",
			field: "providers.gen.prefix", msg: "prefix holds a random-looking value that may be a secret",
		},
		"random value in credential settings": {
			src:   header + "  - id: a\n" + validCredBody + "    settings:\n      prefix: " + canaryRandom + "  # <-\n",
			field: "credentials[0].settings.prefix", msg: "random-looking value",
		},
		"random value in target settings list": {
			src:   "targets:\n  env:\n    type: file\n    path: x\n    extra: [" + canaryRandom + "]  # <-\n",
			field: "targets.env.extra[0]", msg: "random-looking value",
		},
		"malformed reference": {
			src:   "providers:\n  gen:\n    type: generated\n    client_secret: ${env:" + canaryPlain + "}  # <-\n",
			field: "providers.gen.client_secret", msg: "invalid secret reference: env variable name must match",
		},
		"partial reference": {
			src:   "providers:\n  gen:\n    type: generated\n    admin_dsn: postgres://u:${env:PW}@db/x  # <-\n",
			field: "providers.gen.admin_dsn", msg: "a reference must be the whole value",
		},
		"secret behind an alias": {
			src:   "x-anchor: &pw " + canaryPlain + "\nproviders:\n  gen:\n    type: generated\n    client_secret: *pw  # <-\n",
			field: "providers.gen.client_secret", msg: "literal secret in client_secret",
		},
		"secret through a merge key": {
			src:   "x-base: &base\n  client_secret: " + canaryPlain + "  # <-\nproviders:\n  gen:\n    <<: *base\n    type: generated\n",
			field: "x-base.client_secret", msg: "literal secret in client_secret",
		},
		"numeric password": {
			src:   "providers:\n  gen:\n    type: generated\n    password: 12345678  # <-\n",
			field: "providers.gen.password", msg: "literal secret in password",
		},
		// Documents that must not produce a secret error.
		"env reference": {
			src: "providers:\n  gen:\n    type: generated\n    client_secret: ${env:OKTA_CLIENT_SECRET}\n",
		},
		"file reference": {
			src: "providers:\n  gen:\n    type: generated\n    admin_dsn: ${file:/run/secrets/pg_admin_dsn}\n",
		},
		"aws reference with json key": {
			src: "providers:\n  gen:\n    type: generated\n    api_key: ${aws-sm:prod/mcp/github#token}\n",
		},
		"empty and null sensitive values": {
			src: "providers:\n  gen:\n    type: generated\n    client_secret: \"\"\n    password:\n    use_token: true\n",
		},
		"identifiers and urls in settings": {
			src: "providers:\n  gen:\n    type: generated\n    client_id: 0oab8eb55Kb9jdMIr5d6\n    token_url: https://example.okta.com/oauth2/default/v1/token\n" +
				"    resource: https://mcp.example.com/mcp\n    audience: mcp-gateway\n    alphabet: abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789\n",
		},
		"secret in a comment": {
			src: "providers:\n  gen:\n    type: generated  # client_secret: " + canaryGitHub + "\n# " + canaryAWS + "\n",
		},
		"random value outside settings": {
			src: header + "  - id: a\n" + validCredBody + "    consumer: " + canaryRandom + "\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseString(tc.src)
			if err != nil {
				assertNoCanary(t, err.Error())
				var errs *Errors
				if errors.As(err, &errs) {
					for _, e := range errs.List {
						assertNoCanary(t, e.Field+e.Msg)
					}
				}
			}
			if tc.msg == "" {
				if err == nil {
					return
				}
				for _, e := range errorList(t, cfg, err) {
					if strings.Contains(e.Msg, "secret") || strings.Contains(e.Msg, "reference") || strings.Contains(e.Msg, "random-looking") {
						t.Errorf("unexpected secret error %v", e)
					}
				}
				return
			}
			list := errorList(t, cfg, err)
			line := markedLine(t, tc.src)
			for _, e := range list {
				if e.Line == line && e.Field == tc.field && strings.Contains(e.Msg, tc.msg) {
					return
				}
			}
			t.Fatalf("no error at line %d, field %q, containing %q; got:\n%v", line, tc.field, tc.msg, err)
		})
	}
}

func TestPluginErrorsDoNotRepeatSecrets(t *testing.T) {
	t.Parallel()
	// The file target's validator quotes a bad format value; the loader
	// must scrub it, since the value is a token.
	src := "targets:\n  env:\n    type: file\n    path: x\n    format: " + canaryGitHub + "\n" +
		"    mode: \"" + canaryRandom + "\"\n"
	cfg, err := parseString(src)
	list := errorList(t, cfg, err)
	assertNoCanary(t, err.Error())
	var sawFormat bool
	for _, e := range list {
		if e.Field == "targets.env.format" && strings.Contains(e.Msg, "must be one of dotenv, json, raw") {
			sawFormat = true
			if !strings.Contains(e.Msg, "[REDACTED]") {
				t.Errorf("format error %q does not show the redaction", e.Msg)
			}
		}
	}
	if !sawFormat {
		t.Fatalf("no format error:\n%v", err)
	}
}

func TestRefsEchoedNowhere(t *testing.T) {
	t.Parallel()
	// Values that look like secrets in places where the loader would quote a
	// value (unknown names, bad durations, schedules) are not repeated.
	src := "providers:\n  gen:\n    type: " + canaryRandom + "\n" +
		header[len("providers:\n  gen:\n    type: generated\n"):] +
		"  - id: a\n    consumer: x\n    provider: " + canaryGitHub + "\n    max_age: " + canaryRandom + "\n" +
		"    schedule: \"" + canaryAWS + " * * * *\"\n    runbook: runbooks/" + canaryRandom + ".md#" + canaryRandom + "\n" +
		"    window: {start: \"" + canaryRandom + "\", end: \"02:00\", timezone: " + canaryRandom + "}\n" +
		"    targets: [{target: " + canaryRandom + "}]\n" +
		canaryGitHub + ": 1\n"
	cfg, err := parseString(src)
	list := errorList(t, cfg, err)
	assertNoCanary(t, err.Error())
	if len(list) < 8 {
		t.Fatalf("want at least 8 errors, got:\n%v", err)
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	noOverlap := providers.Factory{
		Capabilities:       providers.Capabilities{Overlap: false, MaxTTL: time.Hour},
		ValidateProvider:   func(settings.Map) settings.Errors { return nil },
		ValidateCredential: func(settings.Map) settings.Errors { return nil },
	}
	reg := builtin
	reg.provider = func(typ string) (providers.Factory, bool) {
		if typ == "swap" {
			return noOverlap, true
		}
		return provreg.Lookup(typ)
	}
	src := "providers:\n  pg:\n    type: swap\n  unused:  # line 4\n    type: generated\n" +
		"targets:\n  env:  # line 7\n    type: file\n    path: x.env\n" +
		"credentials:\n  - id: a\n" +
		"    consumer: x\n    provider: pg\n    max_age: 2h  # line 14\n    grace: 5m  # line 15\n    runbook: runbooks/generated.md\n"
	cfg, err := parse("w.yaml", []byte(src), Options{BaseDir: testdataDir, CheckRunbooks: true}, reg)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line  int
		field string
		msg   string
	}{
		{4, "providers.unused", "provider is defined but no credential uses it"},
		{7, "targets.env", "target is defined but no credential publishes to it"},
		{14, "credentials[0].max_age", "max_age 2h exceeds what provider type swap can grant (1h)"},
		{15, "credentials[0].grace", "cannot keep the old and the new value valid at once"},
	}
	if len(cfg.Warnings) != len(want) {
		t.Fatalf("warnings = %+v", cfg.Warnings)
	}
	for i, w := range want {
		g := cfg.Warnings[i]
		if g.Line != w.line || g.Field != w.field || !strings.Contains(g.Msg, w.msg) || g.File != "w.yaml" {
			t.Errorf("warning %d = %v, want line %d %s: %s", i, g, w.line, w.field, w.msg)
		}
	}
}

func TestParseEdgeCases(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		src   string
		check func(t *testing.T, cfg *Config)
	}{
		"empty file": {src: "", check: func(t *testing.T, cfg *Config) {
			if len(cfg.Credentials) != 0 || cfg.Providers == nil {
				t.Errorf("cfg = %+v", cfg)
			}
		}},
		"only comments":  {src: "# nothing yet\n", check: func(*testing.T, *Config) {}},
		"empty sections": {src: "providers:\ntargets: {}\ncredentials: []\n", check: func(*testing.T, *Config) {}},
		"mode keeps its octal text": {
			src: "targets:\n  env:\n    type: file\n    path: x.env\n    mode: 0600\n",
			check: func(t *testing.T, cfg *Config) {
				if got := cfg.Targets["env"].Settings["mode"]; got != "0600" {
					t.Errorf("mode = %#v, want \"0600\"", got)
				}
			},
		},
		"every and descriptors": {
			src: header + "  - id: a\n" + validCredBody + "    schedule: \"@every 45m\"\n    targets: [{target: env}]\n" +
				"  - id: b\n" + validCredBody + "    schedule: \"@daily\"\n    window: {start: \"22:00\", end: \"02:00\"}\n" +
				"  - id: c\n" + validCredBody + "    schedule: \"CRON_TZ=Europe/Berlin 0 3 * * *\"\n    renew_at: 0.75\n" +
				"  - id: d\n" + validCredBody,
			check: func(t *testing.T, cfg *Config) {
				if len(cfg.Credentials) != 4 || cfg.Credentials[1].Policy.Window.Timezone != "" || cfg.Credentials[2].Policy.RenewAt != 0.75 {
					t.Errorf("credentials = %+v", cfg.Credentials)
				}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseString(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if cfg == nil {
				t.Fatal("nil config and nil error")
			}
			tc.check(t, cfg)
		})
	}
}

func TestMergeKeys(t *testing.T) {
	t.Parallel()
	// An anchored credential shares its fields with the next through <<;
	// explicit keys win over merged ones.
	src := header + "  - &base\n    id: a\n" + validCredBody + "    grace: 5m\n  - <<: *base\n    id: b\n    max_age: 2h\n"
	cfg, err := parseString(src)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := cfg.Credential("b")
	if !ok || b.Policy.Grace != 5*time.Minute || b.Policy.MaxAge != 2*time.Hour || b.Consumer != "mcp-server-notes" || b.Line != 16 {
		t.Errorf("merged credential = %+v", b)
	}
}

func TestAliasBomb(t *testing.T) {
	t.Parallel()
	// A billion-laughs document must fail fast, not exhaust memory.
	var b strings.Builder
	b.WriteString("providers:\n  gen:\n    type: generated\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "    a%d: &a%d [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	start := time.Now()
	cfg, err := parseString(b.String())
	list := errorList(t, cfg, err)
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
	found := false
	for _, e := range list {
		found = found || strings.Contains(e.Msg, "expands to more than")
	}
	if !found {
		t.Fatalf("no expansion error:\n%v", err)
	}
}

func TestSpecHash(t *testing.T) {
	t.Parallel()
	cfg, err := Load(filepath.Join(testdataDir, "design.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := cfg.Credential("github-mcp-token")
	base := c.ToStore()
	if base.SpecHash == "" || !strings.HasPrefix(base.SpecHash, "sha256:") || base.ID != c.ID || base.Runbook != c.Runbook ||
		!slices.Equal(base.Targets, c.Targets) || base.Policy.MaxAge != time.Hour {
		t.Fatalf("ToStore = %+v", base)
	}

	changes := map[string]func(c *Credential){
		"max_age":  func(c *Credential) { c.Policy.MaxAge = 2 * time.Hour },
		"scope":    func(c *Credential) { c.Scope = []string{"repo:read"} },
		"label":    func(c *Credential) { c.Labels = map[string]string{"team": "platform", "env": "dev"} },
		"settings": func(c *Credential) { c.Settings = settings.Map{"length": 64} },
		"runbook":  func(c *Credential) { c.Runbook = "runbooks/generated.md#rotation" },
		"target":   func(c *Credential) { c.Targets = c.Targets[:1] },
		"window":   func(c *Credential) { c.Policy.Window = &store.Window{Start: "01:00", End: "02:00"} },
	}
	for name, change := range changes {
		cc := c
		change(&cc)
		if cc.ToStore().SpecHash == base.SpecHash {
			t.Errorf("changing %s does not change the spec hash", name)
		}
	}
	same := c
	same.RunbookRef.Digest = "sha256:0000"
	same.RunbookRef.File = "/elsewhere.md"
	same.Line = 99
	same.Labels = map[string]string{"env": "prod", "team": "platform"}
	if same.SpecHash() != base.SpecHash {
		t.Errorf("the runbook digest, file or line changed the spec hash")
	}
	empty := Credential{ID: "x"}
	emptied := Credential{ID: "x", Scope: []string{}, Labels: map[string]string{}, Settings: settings.Map{}}
	if empty.SpecHash() != emptied.SpecHash() {
		t.Errorf("nil and empty collections hash differently")
	}

	// Loading the same file twice yields the same hashes.
	again, err := Load(filepath.Join(testdataDir, "design.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(cfg.StoreCredentials(), again.StoreCredentials(), func(a, b store.Credential) bool { return a.SpecHash == b.SpecHash }) {
		t.Errorf("spec hashes differ between loads")
	}
	provs := cfg.StoreProviders()
	if len(provs) != 3 || provs[0].Name != "gen" || provs[0].SpecHash == "" || provs[0].SpecHash == provs[1].SpecHash {
		t.Errorf("StoreProviders = %+v", provs)
	}
	p := cfg.Providers["gen"]
	h := p.ToStore().SpecHash
	p.Settings = settings.Map{"length": 41, "prefix": "rtr_"}
	if p.ToStore().SpecHash == h {
		t.Errorf("changing provider settings does not change its spec hash")
	}
}

func TestQuickstart(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "examples", "quickstart.yaml")
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	if len(cfg.Credentials) < 3 || len(cfg.Warnings) != 0 {
		t.Fatalf("credentials = %d, warnings = %v", len(cfg.Credentials), cfg.Warnings)
	}
	fast := 0
	for _, c := range cfg.Credentials {
		if c.Policy.Schedule == "@every 1m" && c.Policy.MaxAge == 5*time.Minute && c.Policy.Grace == 30*time.Second {
			fast++
			if len(c.Targets) != 1 || c.Targets[0].Key == "" || cfg.Targets[c.Targets[0].Target].Settings["path"] != "./run/mcp.env" {
				t.Errorf("fast credential targets = %+v", c.Targets)
			}
		}
		if c.RunbookRef.Digest == "" || c.RunbookRef.Anchor != "rotation" {
			t.Errorf("%s: runbook ref = %+v", c.ID, c.RunbookRef)
		}
		if p := cfg.Providers[c.Provider]; p.Type != "generated" {
			t.Errorf("%s: provider type %q", c.ID, p.Type)
		}
	}
	if fast != 1 {
		t.Errorf("%d credentials rotate every minute, want 1", fast)
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(testdataDir, "nope.yaml"))
	var errs *Errors
	if err == nil || errors.As(err, &errs) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load = %v, want a not-exist error", err)
	}
}

func TestErrorRendering(t *testing.T) {
	t.Parallel()
	errs := &Errors{List: []Error{
		{File: "c.yaml", Line: 3, Field: "credentials[0].id", Msg: "is required"},
		{File: "c.yaml", Msg: "invalid YAML: x"},
	}}
	want := "c.yaml:3: credentials[0].id: is required\nc.yaml: invalid YAML: x"
	if errs.Error() != want {
		t.Errorf("Error() = %q, want %q", errs.Error(), want)
	}
	var one Error
	if !errors.As(error(errs), &one) || one.Line != 3 {
		t.Errorf("errors.As found %+v", one)
	}
}

func TestLooksSecret(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		canaryGitHub:                         true,
		"\u034a" + canaryRandom:              true,
		"credentials:00000${" + canaryRandom: true,
		"aaaaaaaaaaaaaaaaaaaaaa" + canaryRandom + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": true,
		"prefix " + canaryAWS + " suffix":                                             true,
		"x" + canarySlack:                                                             true,
		"mcp-gateway":                                                                 false,
		"generated-secrets-test-fixture":                                              false,
		"/tmp/TestResolve1234567890/001/runbooks/generated.md":                        false,
		"runbooks/oauth2-client-credentials.md#rotation":                              false,
		"America/New_York":                                                            false,
		"${env:OKTA_CLIENT_SECRET}":                                                   false,
		"credentials[12].targets[3].key":                                              false,
		"SELECT on reporting.*":                                                       false,
		"CRON_TZ=Europe/Berlin 0 3 * * *":                                             false,
	}
	for in, want := range cases {
		if got := looksSecret(in); got != want {
			t.Errorf("looksSecret(%q) = %v, want %v", in, got, want)
		}
	}
}
