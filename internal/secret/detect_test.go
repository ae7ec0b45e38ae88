package secret

import (
	"encoding/base64"
	"strings"
	"testing"
)

// Token-shaped test values are assembled at run time so that this file does
// not itself trip secret scanners (push protection, gitleaks).
const (
	alnum36 = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
	alnum40 = "Zq8Xv2Lm4Np6Rt9Ws3Yu5Ka7Hd1Gf0Jc2Be4Ti"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func jwt(header, payload string) string {
	return b64(header) + "." + b64(payload) + "." + "c2lnbmF0dXJlLXNpZ25hdHVyZQ"
}

func TestDetectToken(t *testing.T) {
	t.Parallel()
	fineGrained := "github" + "_pat_" + "11ABCDEFG0" + strings.Repeat("x9Y_", 17) + "abcd"
	if n := len(fineGrained) - len("github_pat_"); n != 82 {
		t.Fatalf("fine-grained fixture has %d characters, want 82", n)
	}
	cases := map[string]struct {
		in   string
		kind string // empty: must not match
	}{
		"github classic":            {in: "gh" + "p_" + alnum36, kind: "GitHub personal access token"},
		"github classic in header":  {in: "Authorization: Bearer gh" + "p_" + alnum36 + "\n", kind: "GitHub personal access token"},
		"github classic after =":    {in: "GITHUB_TOKEN=gh" + "p_" + alnum36, kind: "GitHub personal access token"},
		"github oauth":              {in: "gh" + "o_" + alnum36, kind: "GitHub OAuth access token"},
		"github user-to-server":     {in: "gh" + "u_" + alnum36, kind: "GitHub user-to-server token"},
		"github server-to-server":   {in: "gh" + "s_" + alnum36, kind: "GitHub server-to-server token"},
		"github refresh":            {in: "gh" + "r_" + alnum36, kind: "GitHub refresh token"},
		"github fine-grained":       {in: fineGrained, kind: "GitHub fine-grained personal access token"},
		"slack bot":                 {in: "xo" + "xb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", kind: "Slack bot token"},
		"slack user":                {in: "token: xo" + "xp-1234567890-1234567890-1234567890123-0123456789abcdef", kind: "Slack user token"},
		"slack refresh":             {in: "xo" + "xe-1-ABCDEFGHIJKLMNOP1234", kind: "Slack token"},
		"aws access key":            {in: "AKIA" + "IOSFODNN7EXAMPLE", kind: "AWS access key ID"},
		"aws temporary key":         {in: "aws_access_key_id = AS" + "IAIOSFODNN7EXAMPL2", kind: "AWS temporary access key ID"},
		"openai legacy":             {in: "sk" + "-" + alnum40 + "T3BlbkFJ", kind: "OpenAI API key"},
		"openai project":            {in: "sk" + "-proj-" + alnum40 + "_-" + alnum36, kind: "OpenAI API key"},
		"anthropic":                 {in: "sk" + "-ant-api03-" + alnum40 + alnum36 + "-AAAA", kind: "Anthropic API key"},
		"stripe live":               {in: "sk" + "_live_" + alnum36, kind: "Stripe live secret key"},
		"stripe restricted":         {in: "rk" + "_live_" + alnum36, kind: "Stripe restricted key"},
		"stripe test":               {in: "sk" + "_test_" + alnum36, kind: "Stripe test secret key"},
		"google api key":            {in: "key=AI" + "zaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", kind: "Google API key"},
		"jwt":                       {in: jwt(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"1234567890"}`), kind: "JSON Web Token"},
		"jwt unsecured":             {in: strings.TrimSuffix(jwt(`{"alg":"none"}`, `{"sub":"x"}`), "c2lnbmF0dXJlLXNpZ25hdHVyZQ"), kind: "JSON Web Token"},
		"jwt spaced header":         {in: "Bearer " + jwt(`{ "typ": "JWT", "alg": "RS256" }`, `{}`), kind: "JSON Web Token"},
		"pem rsa":                   {in: "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEow...\n", kind: "PEM private key"},
		"pem pkcs8":                 {in: "x: |\n  -----BEGIN " + "PRIVATE KEY-----", kind: "PEM private key"},
		"pem openssh":               {in: "-----BEGIN OPENSSH " + "PRIVATE KEY-----", kind: "PEM private key"},
		"pem encrypted":             {in: "-----BEGIN ENCRYPTED " + "PRIVATE KEY-----", kind: "PEM private key"},
		"pgp":                       {in: "-----BEGIN PGP " + "PRIVATE KEY BLOCK-----", kind: "PEM private key"},
		"near: github short":        {in: "gh" + "p_" + alnum36[:35]},
		"github with more appended": {in: "gh" + "p_" + alnum36 + "X", kind: "GitHub personal access token"},
		"github inside a word":      {in: "x" + "gh" + "p_" + alnum36, kind: "GitHub personal access token"},
		"slack inside a word":       {in: "0" + "xo" + "xb-1234567890-abcdef", kind: "Slack bot token"},
		"near: aws inside a word":   {in: "X" + "AKIA" + "IOSFODNN7EXAMPLE"},
		"near: aws upper-case word": {in: "ASIA" + "NSTUDIESDEPARTMENTS"},
		"near: github prefix only":  {in: "ghp_"},
		"near: github other prefix": {in: "gh" + "x_" + alnum36},
		"near: github symbols":      {in: "gh" + "p_" + strings.Repeat("-", 36)},
		"near: fine-grained short":  {in: fineGrained[:len(fineGrained)-1]},
		"near: slack word":          {in: "xoxb-not-a-token"},
		"near: slack no digits":     {in: "xo" + "xb-abcdefghijklmnop"},
		"near: slack bad letter":    {in: "xo" + "xz-1234567890-1234567890123"},
		"near: aws lower case":      {in: "akia" + "iosfodnn7example"},
		"near: aws short":           {in: "AKIA" + "IOSFODNN7EXAMP"},
		"near: aws other prefix":    {in: "AKIB" + "IOSFODNN7EXAMPLE"},
		"near: openai words":        {in: "sk-not-a-real-openai-key-at-all"},
		"near: openai short":        {in: "sk" + "-abc123"},
		"near: task-":               {in: "task-0123456789abcdefghijkl"},
		"near: anthropic short":     {in: "sk-ant-api03"},
		"near: stripe publishable":  {in: "pk" + "_live_" + alnum36},
		"near: stripe short":        {in: "sk_live_123"},
		"near: google short":        {in: "AI" + "zaSyA1b2C3d4"},
		"near: jwt no alg":          {in: jwt(`{"typ":"JWT"}`, `{"sub":"1"}`)},
		"near: jwt not json":        {in: b64("{not json at all}") + ".abc.def"},
		"near: dotted host":         {in: "eyeglasses.example.com"},
		"near: pem public key":      {in: "-----BEGIN PUBLIC KEY-----"},
		"near: pem certificate":     {in: "-----BEGIN CERTIFICATE-----"},
		"near: reference":           {in: "${env:GITHUB_TOKEN}"},
		"near: url":                 {in: "https://example.okta.com/oauth2/default/v1/token"},
		"near: identifier":          {in: "mcp-gateway"},
		"near: empty":               {in: ""},
		"near: prose":               {in: "rotate the sk- keys and ghp_ tokens every hour"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			kind, ok := DetectToken(tc.in)
			if tc.kind == "" {
				if ok {
					t.Fatalf("DetectToken matched %q, want no match", kind)
				}
				return
			}
			if !ok || kind != tc.kind {
				t.Fatalf("DetectToken = %q, %v; want %q, true", kind, ok, tc.kind)
			}
			if strings.Contains(kind, tc.in) {
				t.Fatalf("kind %q contains the token", kind)
			}
		})
	}
}

func TestHighEntropy(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		in   string
		want bool
	}{
		"alnum 40":                  {in: alnum40, want: true},
		"alnum 16":                  {in: "q7Xr2LmZ9vKp4TnB", want: true},
		"base64 std":                {in: "dGhpcyBpcyBhIHNlY3JldCE/K+9xZ2Fwb3Q=", want: true},
		"base64url":                 {in: "Zq8Xv2Lm4Np6-Rt9Ws3Yu5_Ka7Hd1Gf0", want: true},
		"hex 32":                    {in: "9f86d081884c7d659a2feaa0c55ad015", want: true},
		"hex 64":                    {in: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want: true},
		"symbols":                   {in: "kP9#vL2!xQ7@mZ4%", want: true},
		"dashed groups":             {in: "Xy7q-Qp2z-Lm9k-Rt4w-Zk8j", want: true},
		"okta client id":            {in: "0oab8eb55Kb9jdMIr5d6", want: true},
		"prefixed random":           {in: "rtr_" + alnum36, want: true},
		"identifier":                {in: "mcp-gateway"},
		"long identifier":           {in: "mcp-server-github-proxy-2024"},
		"snake identifier":          {in: "mcp_reports_readonly_role"},
		"camel identifier":          {in: "someVeryLongCamelCaseName2"},
		"env name":                  {in: "OKTA_CLIENT_SECRET_V2"},
		"url":                       {in: "https://example.okta.com/oauth2/default/v1/token"},
		"url with query":            {in: "https://api.example.com/v1?key=Zq8Xv2Lm4Np6Rt9Ws3"}, // rotator:ignore: test fixture
		"absolute path":             {in: "/run/secrets/pg_admin_dsn"},
		"relative path":             {in: "./run/mcp.env"},
		"runbook":                   {in: "runbooks/oauth2-client-credentials.md#rotation"},
		"reference":                 {in: "${env:OKTA_CLIENT_SECRET}"},
		"aws sm reference":          {in: "${aws-sm:prod/mcp/Zq8Xv2Lm4Np6Rt9Ws3#password}"},
		"host":                      {in: "mcp.internal.example.com"},
		"email":                     {in: "platform-team@example.com"},
		"uuid":                      {in: "123e4567-e89b-12d3-a456-426614174000"},
		"arn":                       {in: "arn:aws:secretsmanager:us-east-1:123456789012:secret:mcp/github-token-a1B2c3"},
		"timestamp":                 {in: "2024-01-01T00:00:00Z"},
		"sentence":                  {in: "this is a long sentence with spaces"},
		"short random":              {in: "q7Xr2LmZ9v"},
		"only lower":                {in: "kqzvjxwpmtrnbhfdlgyc"},
		"only digits":               {in: "12345678901234567890"},
		"short hex":                 {in: "9f86d081884c7d65"},
		"repeated":                  {in: "aaaaaaaaAAAAAAAA11111111"},
		"cron":                      {in: "CRON_TZ=Europe/Berlin 0 3 * * *"},
		"non-ascii":                 {in: "пароль-пароль-пароль"},
		"scope":                     {in: "repo:read,issues:write"},
		"empty":                     {in: ""},
		"version":                   {in: "v1.2.3-rc.1+build.20240101"},
		"duration":                  {in: "1d12h30m15s500ms"},
		"dotenv path":               {in: "/var/lib/rotator/run/mcp.env"},
		"k8s secret reference":      {in: "${file:/var/run/secrets/kubernetes.io/token}"},
		"random around a reference": {in: "${env:X}" + alnum40, want: true},
		"unterminated reference":    {in: "x:${" + alnum40, want: true},
		"nested reference":          {in: "${${env:A}}"},
		"alphabet":                  {in: "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"},
		"symbol alphabet":           {in: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%+-.:=@^_~"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := HighEntropy(tc.in); got != tc.want {
				t.Fatalf("HighEntropy(%q) = %v, want %v (entropy %.2f)", tc.in, got, tc.want, shannon(tc.in))
			}
		})
	}
}

func FuzzDetectToken(f *testing.F) {
	for _, s := range []string{
		"gh" + "p_" + alnum36, "xo" + "xb-1234567890-abc", jwt(`{"alg":"HS256"}`, `{}`),
		"-----BEGIN " + "PRIVATE KEY-----", "mcp-gateway", alnum40, "${env:X}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, ok := DetectToken(s)
		if ok != (kind != "") {
			t.Fatalf("DetectToken(%q) = %q, %v", s, kind, ok)
		}
		if ok && len(s) > 0 && strings.Contains(kind, s) && len(s) > 8 {
			t.Fatalf("kind %q contains the input", kind)
		}
		if HighEntropy(s) && (len(s) < minEntropyLen || strings.ContainsAny(s, " \t\n")) {
			t.Fatalf("HighEntropy(%q) is true for a short or spaced string", s)
		}
	})
}
