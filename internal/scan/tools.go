package scan

import (
	"bytes"
	"regexp"
	"strings"
)

// An MCP tool whose input schema asks the model for a credential exposes
// the credential to the model (and to its logs and transcripts). These
// functions find such inputs in tool definitions written as JSON or YAML
// schemas and in TypeScript, JavaScript, Python and Go sources that define
// MCP tools.

// credentialWords are the parts of an input's name that ask for a
// credential; the name is first normalised to snake_case.
var credentialWords = []string{"password", "passwd", "passphrase", "api_key", "apikey", "access_key", "secret_key",
	"private_key", "client_secret", "secret", "token", "authorization", "auth_header", "bearer", "credential", "cookie"}

// credentialExact are names that ask for a credential only as a whole.
var credentialExact = map[string]bool{"auth": true, "pat": true, "pass": true, "pwd": true, "key": false}

// notCredential are name parts that make an input something else: a page
// cursor, a count, a reference to a secret rather than the secret.
var notCredential = []string{"page", "cursor", "next", "continuation", "sync_token", "max", "min_", "num", "count", "limit",
	"length", "usage", "tokens", "tokenize", "_id", "_ids", "_name", "_url", "_uri", "_path", "_file", "_env", "_type", "_ttl",
	"_expiry", "_hint", "_ref", "_arn", "_prefix", "_format", "public", "csrf", "_length", "budget"}

var credentialPhrase = regexp.MustCompile(`(?i)\b(api[ _-]?key|password|passphrase|access[ _-]?token|auth(?:entication|orization)?[ _-]?(?:token|header)|bearer[ _-]?token|client[ _-]?secret|secret[ _-]?key|private[ _-]?key|personal access token|credentials?)\b`)

// credentialInput reports whether a tool input named name, described by
// desc, asks for a credential.
func credentialInput(name, desc string) bool {
	n := snake(name)
	for _, w := range notCredential {
		if strings.Contains(n, w) {
			return false
		}
	}
	if ok, found := credentialExact[n]; found {
		return ok || credentialPhrase.MatchString(desc)
	}
	for _, w := range credentialWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	// A neutral name described as a credential ("key": "Your API key").
	if strings.Contains(n, "key") || n == "value" || n == "header" || n == "login" {
		return desc != "" && credentialPhrase.MatchString(desc)
	}
	return false
}

// toolSchemas finds the tool input schemas of a JSON or YAML tree: the
// inputSchema (input_schema) of a tool, the parameters of a tool in a
// "tools" list.
func (d *doc) toolSchemas(n *jnode, depth int, inTools bool) {
	if depth > 32 {
		return
	}
	switch n.kind {
	case 'o':
		for _, m := range n.members {
			switch {
			case (m.key == "inputSchema" || m.key == "input_schema") && m.val.kind == 'o':
				d.schemaProps(m.val, 0)
			case m.key == "parameters" && inTools && m.val.kind == 'o':
				d.schemaProps(m.val, 0)
			default:
				d.toolSchemas(m.val, depth+1, m.key == "tools")
			}
		}
	case 'a':
		for _, it := range n.items {
			d.toolSchemas(it, depth+1, inTools)
		}
	}
}

// schemaProps judges the properties of a JSON schema, nested ones too, and
// inputs mapped to HTTP headers (x-mcp-header).
func (d *doc) schemaProps(schema *jnode, depth int) {
	if depth > 8 || schema == nil || schema.kind != 'o' {
		return
	}
	if props := schema.get("properties"); props != nil && props.kind == 'o' {
		for _, m := range props.members {
			desc := ""
			if m.val.kind == 'o' {
				if dn := m.val.get("description"); dn != nil {
					desc = dn.str
				}
				if hn := m.val.get("x-mcp-header"); hn != nil && hn.kind == 's' && (credentialInput(hn.str, "") || credentialInput(m.key, desc)) {
					d.addTool(m.keyStart+1, m.key, "header "+hn.str)
					continue
				}
			}
			if credentialInput(m.key, desc) {
				d.addTool(m.keyStart+1, m.key, "")
				continue
			}
			d.schemaProps(m.val, depth+1)
			if it := m.val.get("items"); it != nil {
				d.schemaProps(it, depth+1)
			}
		}
	}
	// OpenAPI-style parameters mapped to headers.
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if l := schema.get(k); l != nil && l.kind == 'a' {
			for _, it := range l.items {
				d.schemaProps(it, depth+1)
			}
		}
	}
}

func (d *doc) addTool(off int, name, where string) {
	d.add(off, toolRule, "", Finding{Kind: KindToolInput, Name: name, Where: where, prio: 20})
}

// MCP markers: a source file holding one of them may define MCP tools.
var mcpMarkers = [][]byte{[]byte("modelcontextprotocol"), []byte("mcp-go"), []byte("fastmcp"), []byte("mcpserver"),
	[]byte("mcp.server"), []byte("from mcp"), []byte("import mcp"), []byte("registertool"), []byte("inputschema"),
	[]byte("input_schema"), []byte(".tool("), []byte("mcp.newtool"), []byte("mcp.addtool"), []byte("@mcp.tool"), []byte("listtoolsrequestschema")}

var (
	// zod, TypeBox, valibot or JSON-schema property definitions.
	tsPropRE = regexp.MustCompile(`^\s*["']?([A-Za-z_$][A-Za-z0-9_$]*)["']?\s*:\s*(?:z\.|zod\.|Type\.|v\.|\{\s*["']?type["']?\s*:)`)
	// Python decorators that make a function an MCP tool.
	pyToolRE  = regexp.MustCompile(`^\s*@(?:[A-Za-z_][A-Za-z0-9_]*\.)*tool\b`)
	pyParamRE = regexp.MustCompile(`(?:\(|,)\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::([^,=)]*(?:\([^)]*\))?[^,=)]*))?`)
	// Go: mark3labs/mcp-go options and struct fields with a jsonschema tag
	// (the official SDK infers tool input schemas from them).
	goWithRE  = regexp.MustCompile(`mcp\.With(?:String|Number|Boolean|Object|Array)\(\s*"([^"]+)"`)
	goFieldRE = regexp.MustCompile("`[^`]*json:\"([A-Za-z0-9_\\-]+)[^`]*jsonschema:\"([^\"]*)\"")
	descRE    = regexp.MustCompile(`(?i)(?:describe|description)\s*[(=:]\s*["'` + "`" + `]([^"'` + "`" + `]*)`)
)

// sourceTools finds tool inputs asking for credentials in a source file
// that mentions MCP.
func (d *doc) sourceTools() {
	switch d.ext {
	case ".ts", ".tsx", ".js", ".mjs", ".cjs", ".mts", ".jsx", ".py", ".go":
	default:
		return
	}
	marked := false
	for _, m := range mcpMarkers {
		if bytes.Contains(d.lower, m) {
			marked = true
			break
		}
	}
	if !marked {
		return
	}
	pyTool := 0 // lines left in which a decorated def's signature may be
	for li := range d.lines {
		line := d.line(li)
		base := d.lines[li]
		desc := ""
		if m := descRE.FindStringSubmatch(line); m != nil {
			desc = m[1]
		}
		switch d.ext {
		case ".go":
			for _, m := range goWithRE.FindAllStringSubmatchIndex(line, -1) {
				if credentialInput(line[m[2]:m[3]], desc) {
					d.addTool(base+m[2], line[m[2]:m[3]], "")
				}
			}
			if m := goFieldRE.FindStringSubmatchIndex(line); m != nil && credentialInput(line[m[2]:m[3]], line[m[4]:m[5]]) {
				d.addTool(base+m[2], line[m[2]:m[3]], "")
			}
		case ".py":
			if pyToolRE.MatchString(line) {
				pyTool = 12
				continue
			}
			if pyTool > 0 {
				pyTool--
				sig := "," + line
				if strings.Contains(line, "def ") {
					sig = line[strings.Index(line, "("):]
				}
				for _, m := range pyParamRE.FindAllStringSubmatchIndex(sig, -1) {
					name := sig[m[2]:m[3]]
					if name == "self" || name == "ctx" || name == "context" {
						continue
					}
					off := strings.Index(line, name)
					if off >= 0 && credentialInput(name, desc) {
						d.addTool(base+off, name, "")
					}
				}
				if strings.Contains(line, "):") || strings.Contains(line, ") ->") {
					pyTool = 0
				}
			}
			fallthrough
		default:
			if m := tsPropRE.FindStringSubmatchIndex(line); m != nil && credentialInput(line[m[2]:m[3]], desc) {
				d.addTool(base+m[2], line[m[2]:m[3]], "")
			}
		}
	}
}
