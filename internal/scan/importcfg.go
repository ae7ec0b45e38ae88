package scan

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// vendors maps a token rule to the vendor whose keys it is, for the
// provider that Import proposes (an exec plugin that mints that vendor's
// keys).
var vendors = map[string]string{
	"github-pat": "github", "github-oauth": "github", "github-user-to-server": "github", "github-server-to-server": "github",
	"github-refresh": "github", "github-fine-grained-pat": "github", "gitlab-pat": "gitlab", "slack-bot-token": "slack",
	"slack-user-token": "slack", "slack-token": "slack", "slack-webhook": "slack", "aws-access-key-id": "aws",
	"aws-temporary-access-key-id": "aws-sts", "anthropic-api-key": "anthropic", "openai-api-key": "openai",
	"stripe-live-secret-key": "stripe", "stripe-restricted-key": "stripe", "stripe-test-secret-key": "stripe",
	"google-api-key": "google", "google-oauth-client-secret": "google", "notion-token": "notion", "linear-api-key": "linear",
	"sentry-token": "sentry", "huggingface-token": "huggingface", "npm-token": "npm", "sendgrid-api-key": "sendgrid",
	"private-key": "keypair",
}

// imported is one credential Import proposes.
type imported struct {
	id, consumer, provider, name, file, rule, desc, preview, deliver, role string
	line                                                                   int
	settings                                                               string
}

// importProvider is one provider Import proposes.
type importProvider struct {
	name, comment, body string
}

// Import reads MCP client configurations and returns a rotator
// configuration (YAML) with one credential per secret found: consumer is the
// MCP server's name, the provider is guessed from the value's shape (an exec
// plugin per vendor, postgres-role for a PostgreSQL URL, oauth2 client
// credentials for a JWT, generated otherwise), and scope, owner and policy
// are left to fill in, with comments. It holds references only: no value
// found is written. A file that is not an MCP client configuration is an
// error.
func Import(files []string, now time.Time) ([]byte, int, error) {
	var creds []imported
	providers := map[string]importProvider{}
	ids := map[string]int{}
	for _, path := range files {
		b, err := readLimited(path, DefaultMaxFileSize)
		if err != nil {
			return nil, 0, err
		}
		d := analyze(path, b)
		if !d.mcp {
			return nil, 0, fmt.Errorf("%s: not an MCP client configuration: no mcpServers, servers (VS Code mcp.json), context_servers (Zed) or mcp_servers (Codex)", path)
		}
		fs := d.result()
		awsKey := map[string]bool{} // servers with an AWS access key id
		for _, f := range fs {
			if f.Rule == "aws-access-key-id" {
				awsKey[f.Server] = true
			}
		}
		for _, f := range fs {
			if f.Kind != KindMCPConfig {
				continue
			}
			if awsKey[f.Server] && strings.Contains(strings.ToLower(f.Name), "secret_access_key") {
				continue // one aws-iam-access-key credential holds the pair
			}
			c := imported{consumer: f.Server, name: f.Name, file: path, line: f.Line, rule: f.Rule, desc: f.Description, preview: f.Preview}
			if c.consumer == "" {
				c.consumer = "mcp-client"
			}
			c.provider, c.role = proposeProvider(d, f, providers)
			c.id = credentialID(f, ids)
			c.deliver = delivery(f, c.id)
			creds = append(creds, c)
		}
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "# rotator configuration imported from MCP client configurations on %s by\n", now.UTC().Format("2006-01-02"))
	fmt.Fprintf(&out, "# 'rotator import %s'.\n", strings.Join(files, " "))
	out.WriteString(`#
# It holds references only: no value found in the client configurations is
# written here. Every value that was found is exposed (it sat in a file in
# plain text) and must be rotated: after 'rotator apply -f THIS_FILE', run
# 'rotator rotate --wait ID' for each credential and revoke the old value at
# its vendor. Then replace the literal in the client configuration with the
# delivery command given beside each credential (rotator scan --fix does it
# for Claude Desktop, VS Code and Cursor).
#
# Left to fill in (TODO below): each credential's scope and owner, its policy
# (max_age, grace), and each provider's settings (plugin commands, admin
# connection strings, token endpoints). Runbook paths name rotator's
# runbooks/ directory, looked up beside this file and in its parents.
`)
	if len(creds) == 0 {
		out.WriteString("#\n# No secret was found in the files read.\n")
	}
	names := make([]string, 0, len(providers))
	for n := range providers {
		names = append(names, n)
	}
	sort.Strings(names)
	out.WriteString("\nproviders:")
	if len(names) == 0 {
		out.WriteString(" {}")
	}
	out.WriteString("\n")
	for _, n := range names {
		p := providers[n]
		fmt.Fprintf(&out, "  # %s\n  %s:\n%s", p.comment, n, p.body)
	}
	out.WriteString("\ncredentials:")
	if len(creds) == 0 {
		out.WriteString(" []")
	}
	out.WriteString("\n")
	for _, c := range creds {
		fmt.Fprintf(&out, "  # %s in %s:%d (%s %s): exposed, rotate it.\n", nameOr(c.name, "value"), c.file, c.line, c.desc, c.preview)
		fmt.Fprintf(&out, "  # Deliver it with: %s\n", c.deliver)
		fmt.Fprintf(&out, "  - id: %s\n    consumer: %s\n    provider: %s\n", c.id, yamlString(c.consumer), c.provider)
		out.WriteString("    scope: []               # TODO: the scopes the server needs, such as [repo:read]\n")
		out.WriteString("    owner: \"\"               # TODO: the team that owns the credential\n")
		fmt.Fprintf(&out, "    labels: {imported_from: %s}\n", yamlString(filepath.Base(c.file)))
		out.WriteString("    max_age: 30d            # TODO: the longest a value may live\n    grace: 1h\n")
		if c.role != "" {
			key, val, ok := strings.Cut(c.role, ":")
			if !ok {
				key, val = "role", c.role
			}
			fmt.Fprintf(&out, "    settings: {%s: %s}\n", key, yamlString(val))
		}
		fmt.Fprintf(&out, "    runbook: runbooks/%s.md#rotation\n", runbookFor(providers[c.provider].body))
	}
	return out.Bytes(), len(creds), nil
}

// credentialID names the credential for a finding in an MCP client
// configuration: the server and the variable, header or flag (or the rule),
// numbered when repeated; ids holds the names given so far.
func credentialID(f Finding, ids map[string]int) string {
	base := slug(nameOr(f.Server, "mcp-client") + "-" + nameOr(f.Name, f.Rule))
	ids[base]++
	if ids[base] > 1 {
		return fmt.Sprintf("%s-%d", base, ids[base])
	}
	return base
}

func nameOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func readLimited(path string, max int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, over the limit of %d", path, st.Size(), max)
	}
	return os.ReadFile(path)
}

// slug makes a credential or provider id: lower-case letters, digits and
// dashes.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(snake(s)) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.Trim(b.String(), "-")
	if out == "" {
		out = "credential"
	}
	if len(out) > 100 {
		out = out[:100]
	}
	return out
}

func yamlString(s string) string { return fmt.Sprintf("%q", s) }

// proposeProvider adds (once) the provider a finding's value suggests and
// returns its name, with the role for a postgres-role credential.
func proposeProvider(d *doc, f Finding, providers map[string]importProvider) (name, role string) {
	if f.Rule == "database-url-password" {
		if u := urlAround(d.b, f.off); u != nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
			name = slug("pg-" + u.Hostname())
			if _, ok := providers[name]; !ok {
				env := strings.ToUpper(strings.ReplaceAll(slug(u.Hostname()), "-", "_")) + "_ADMIN_DSN"
				providers[name] = importProvider{name: name,
					comment: fmt.Sprintf("PostgreSQL at %s: rotator creates login roles of the group role and alternates between them.", u.Host),
					body:    fmt.Sprintf("    type: postgres-role\n    admin_dsn: ${env:%s}   # TODO: a reference to an administrative connection string\n    strategy: alternating\n", env),
				}
			}
			return name, u.User.Username()
		}
	}
	if f.Rule == "database-url-password" {
		if u := urlAround(d.b, f.off); u != nil && (u.Scheme == "mysql" || u.Scheme == "mariadb") {
			name = slug("mysql-" + u.Hostname())
			if _, ok := providers[name]; !ok {
				env := strings.ToUpper(strings.ReplaceAll(slug(u.Hostname()), "-", "_")) + "_ADMIN_DSN"
				providers[name] = importProvider{name: name,
					comment: fmt.Sprintf("MySQL at %s: rotator creates the account's alternating users.", u.Host),
					body:    fmt.Sprintf("    type: mysql-user\n    admin_dsn: ${env:%s}   # TODO: a reference to an administrative DSN (user:password@tcp(db:3306)/)\n    strategy: alternating\n", env),
				}
			}
			return name, "user:" + u.User.Username()
		}
	}
	if f.Rule == "aws-access-key-id" {
		name = "aws-iam"
		if _, ok := providers[name]; !ok {
			providers[name] = importProvider{name: name,
				comment: "AWS access keys: rotator creates and deletes the IAM user's keys (the AWS credential chain of rotator's host is used).",
				body:    "    type: aws-iam-access-key\n",
			}
		}
		return name, "user:TODO-iam-user"
	}
	if f.Rule == "jwt" {
		name = "oauth2-" + slug(nameOr(f.Server, "client"))
		if _, ok := providers[name]; !ok {
			env := strings.ToUpper(strings.ReplaceAll(slug(nameOr(f.Server, "client")), "-", "_")) + "_CLIENT_SECRET"
			providers[name] = importProvider{name: name,
				comment: "A JSON Web Token: short-lived bearer tokens come from a token endpoint with client credentials.",
				body:    fmt.Sprintf("    type: oauth2-client-credentials\n    token_url: https://auth.example.com/oauth2/token   # TODO: the token endpoint\n    client_id: TODO-client-id\n    client_secret: ${env:%s}\n", env),
			}
		}
		return name, ""
	}
	if v, ok := vendors[f.Rule]; ok {
		name = v + "-keys"
		if _, ok := providers[name]; !ok {
			providers[name] = importProvider{name: name,
				comment: fmt.Sprintf("%s: an exec plugin mints and revokes these keys through the vendor's API (docs/plugins.md).", f.Description),
				body:    fmt.Sprintf("    type: exec\n    command: [/usr/local/libexec/rotator/%s-keys]   # TODO: the plugin that mints %s keys\n    timeout: 30s\n    overlap: true\n", v, v),
			}
		}
		return name, ""
	}
	name = "generated-secrets"
	if _, ok := providers[name]; !ok {
		providers[name] = importProvider{name: name,
			comment: "Shared secrets and passwords with no vendor API: rotator generates them; the service that checks them must read them from rotator too.",
			body:    "    type: generated\n    length: 40\n    alphabet: alphanumeric\n",
		}
	}
	return name, ""
}

func runbookFor(body string) string {
	for _, t := range []string{"postgres-role", "mysql-user", "aws-iam-access-key", "oauth2-client-credentials", "exec", "generated"} {
		if strings.Contains(body, "type: "+t+"\n") {
			return t
		}
	}
	return "generated"
}

// urlAround parses the URL in b that holds offset off.
func urlAround(b []byte, off int) *url.URL {
	start := bytes.LastIndex(b[:off], []byte("://"))
	if start < 0 {
		return nil
	}
	for start > 0 && (isNameByte(b[start-1]) || b[start-1] == '+' || b[start-1] == ':') {
		start--
	}
	end := off
	for end < len(b) && !strings.ContainsRune(" \t\r\n\"'`<>,", rune(b[end])) {
		end++
	}
	u, err := url.Parse(string(b[start:end]))
	if err != nil {
		return nil
	}
	return u
}

// delivery is the command that gives the server the credential id without
// a literal in the client's configuration.
func delivery(f Finding, id string) string {
	switch {
	case f.Where == "header":
		return fmt.Sprintf("rotator headers --header '%s=%s{%s}' (a headers helper), or rotator proxy --listen 127.0.0.1:PORT --upstream URL --credential %s", f.Name, headerPrefix(f), id, id)
	case f.remote || f.Where == "url":
		return fmt.Sprintf("rotator proxy --listen 127.0.0.1:PORT --upstream URL --credential %s", id)
	case f.Where == "env" && envName(f.Name):
		return fmt.Sprintf("rotator exec --env %s=%s -- COMMAND ARGS...", f.Name, id)
	}
	return fmt.Sprintf("rotator exec --env %s=%s -- COMMAND ARGS... (and pass the variable where the literal was)", envVarFor(f), id)
}

func headerPrefix(f Finding) string { return f.prefix }

// envVarFor names the environment variable that carries a value found in a
// flag, a URL or an argument: API_KEY for --api-key.
func envVarFor(f Finding) string {
	if f.Rule == "database-url-password" && f.Name == "" {
		return "DATABASE_URL"
	}
	n := strings.ToUpper(strings.ReplaceAll(slug(nameOr(f.Name, f.Rule)), "-", "_"))
	if n == "" || n[0] >= '0' && n[0] <= '9' {
		n = "SECRET_" + n
	}
	return n
}
