package scan

import (
	"bytes"
	"strings"
)

// serverRef is one MCP server entry of a client configuration.
type serverRef struct {
	name string
	node *jnode
}

// serverMapKeys hold a map (or, in Continue's config.yaml, a list) of MCP
// servers: Claude Desktop, Claude Code, Cursor, Windsurf, Gemini CLI
// (mcpServers), Zed (context_servers), Codex (mcp_servers).
var serverMapKeys = map[string]bool{"mcpServers": true, "context_servers": true, "mcp_servers": true, "mcp.servers": true}

// findServers returns the MCP server entries of a configuration tree:
// under the keys above anywhere (~/.claude.json keeps them per project
// too), under "servers" at the top of a VS Code mcp.json, and under
// "mcp": {"servers"} in VS Code's settings.json.
func findServers(root *jnode, base string) []serverRef {
	var out []serverRef
	var walk func(n *jnode, depth int)
	take := func(v *jnode) {
		switch v.kind {
		case 'o':
			for _, m := range v.members {
				if m.val.kind == 'o' {
					out = append(out, serverRef{m.key, m.val})
				}
			}
		case 'a':
			for _, it := range v.items {
				if it.kind == 'o' {
					name := "server"
					if s := it.get("name"); s != nil && s.kind == 's' {
						name = s.str
					}
					out = append(out, serverRef{name, it})
				}
			}
		}
	}
	walk = func(n *jnode, depth int) {
		if depth > 8 {
			return
		}
		switch n.kind {
		case 'o':
			for _, m := range n.members {
				isServers := serverMapKeys[m.key] ||
					(m.key == "servers" && ((depth == 0 && base == "mcp.json") || n.isMCPSection))
				if isServers && (m.val.kind == 'o' || m.val.kind == 'a') {
					take(m.val)
					continue
				}
				if m.key == "mcp" && m.val.kind == 'o' {
					m.val.isMCPSection = true
				}
				walk(m.val, depth+1)
			}
		case 'a':
			for _, it := range n.items {
				walk(it, depth+1)
			}
		}
	}
	walk(root, 0)
	return out
}

var remoteTypes = map[string]bool{"http": true, "sse": true, "streamable-http": true, "streamableHttp": true, "streamable_http": true, "remote": true}

// knownServerKeys are the members of a server entry read explicitly.
var knownServerKeys = map[string]bool{"env": true, "headers": true, "http_headers": true, "args": true, "command": true,
	"url": true, "serverUrl": true, "httpUrl": true, "uri": true, "environment": true}

// structuredPass reads the configuration tree of a JSON, YAML or TOML file:
// MCP servers, MCP registry server.json entries and MCP tool schemas.
func (d *doc) structuredPass(root *jnode) {
	servers := findServers(root, d.base)
	if len(servers) > 0 {
		d.mcp = true
	}
	for _, s := range servers {
		d.server(s.name, s.node)
	}
	if d.base == "server.json" || root.get("packages") != nil || root.get("remotes") != nil {
		name := "server"
		if n := root.get("name"); n != nil && n.kind == 's' {
			name = n.str
		}
		d.registry(name, root, 0)
	}
	d.toolSchemas(root, 0, false)
}

func (d *doc) server(name string, s *jnode) {
	remote := false
	for _, k := range []string{"url", "serverUrl", "httpUrl", "uri"} {
		if v := s.get(k); v != nil && v.kind == 's' {
			remote = true
			d.structured(name, k, "url", v, remote)
		}
	}
	if t := s.get("type"); t != nil && remoteTypes[t.str] {
		remote = true
	}
	if t := s.get("transport"); t != nil && t.kind == 'o' {
		if tt := t.get("type"); tt != nil && remoteTypes[tt.str] {
			remote = true
		}
		if u := t.get("url"); u != nil && u.kind == 's' {
			remote = true
			d.structured(name, "url", "url", u, remote)
		}
	}
	cmd := s.get("command")
	body := s
	if cmd != nil && cmd.kind == 'o' { // Zed: "command": {"path", "args", "env"}
		body = cmd
		cmd = cmd.get("path")
	}
	if cmd != nil && cmd.kind == 's' {
		d.structured(name, "", "command", cmd, remote)
	}
	for _, k := range []string{"env", "environment"} {
		for _, src := range []*jnode{s, body} {
			if env := src.get(k); env != nil && env.kind == 'o' {
				for _, m := range env.members {
					d.structured(name, m.key, "env", m.val, remote)
				}
			}
		}
	}
	for _, k := range []string{"headers", "http_headers"} {
		if h := s.get(k); h != nil && h.kind == 'o' {
			for _, m := range h.members {
				d.structured(name, m.key, "header", m.val, true)
			}
		}
	}
	if args := body.get("args"); args != nil && args.kind == 'a' {
		d.args(name, args.items, remote)
	}
	// Anything else: settings, Codex's bearer_token, an "apiKey" member.
	for _, m := range s.members {
		if knownServerKeys[m.key] || m.key == "type" || m.key == "name" {
			continue
		}
		d.leaves(name, m.key, m.val, remote, 0)
	}
}

// leaves judges every string under n by the name of its nearest key.
func (d *doc) leaves(server, name string, n *jnode, remote bool, depth int) {
	if depth > 16 {
		return
	}
	switch n.kind {
	case 's':
		d.structured(server, name, "other", n, remote)
	case 'o':
		for _, m := range n.members {
			d.leaves(server, m.key, m.val, remote, depth+1)
		}
	case 'a':
		for _, it := range n.items {
			d.leaves(server, name, it, remote, depth+1)
		}
	}
}

// args judges a server's arguments: --flag value, --flag=value, KEY=value
// (docker -e) and any argument of a known format (a connection string).
func (d *doc) args(server string, items []*jnode, remote bool) {
	for i := 0; i < len(items); i++ {
		it := items[i]
		if it.kind != 's' {
			continue
		}
		a := it.str
		if strings.HasPrefix(a, "-") {
			flag := strings.TrimLeft(a, "-")
			if k, v, ok := strings.Cut(flag, "="); ok {
				if vd, ok := judge(k, v); ok {
					off := len(a) - len(v)
					d.add(d.strOffset(it, off+vd.start), vd.rule, v[vd.start:vd.end], Finding{Kind: KindMCPConfig, Server: server, Name: k, Where: "arg", remote: remote, prio: 10,
						prefix: a[:off+vd.start], suffix: v[vd.end:]})
				}
				continue
			}
			if i+1 < len(items) && items[i+1].kind == 's' && !strings.HasPrefix(items[i+1].str, "-") && sensitiveName(flag) {
				d.structured(server, flag, "arg", items[i+1], remote)
				i++
				continue
			}
			d.structured(server, "", "arg", it, remote)
			continue
		}
		if k, v, ok := strings.Cut(a, "="); ok && envName(k) {
			if vd, ok := judge(k, v); ok {
				d.add(d.strOffset(it, len(k)+1+vd.start), vd.rule, v[vd.start:vd.end], Finding{Kind: KindMCPConfig, Server: server, Name: k, Where: "arg", remote: remote, prio: 10,
					prefix: a[:len(k)+1+vd.start], suffix: v[vd.end:]})
			}
			continue
		}
		d.structured(server, "", "arg", it, remote)
	}
}

func envName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// structured judges one string value of a server entry.
func (d *doc) structured(server, name, where string, n *jnode, remote bool) {
	if n == nil || n.kind != 's' {
		return
	}
	v, ok := judge(name, n.str)
	if !ok {
		return
	}
	if where == "url" && v.rule.ID == "url-query-credential" {
		// Name it by its query parameter (exaApiKey, token).
		if i := strings.LastIndexAny(n.str[:v.start], "?&"); i >= 0 {
			name = strings.TrimSuffix(n.str[i+1:v.start], "=")
		}
	}
	d.add(d.strOffset(n, v.start), v.rule, n.str[v.start:v.end], Finding{Kind: KindMCPConfig, Server: server, Name: name, Where: where, remote: remote, prio: 10,
		prefix: n.str[:v.start], suffix: n.str[v.end:]})
}

// registry judges an MCP registry server.json: environment variables,
// arguments and remote headers are {name, value|default, isSecret}.
func (d *doc) registry(server string, n *jnode, depth int) {
	if depth > 16 {
		return
	}
	switch n.kind {
	case 'o':
		if nm := n.get("name"); nm != nil && nm.kind == 's' {
			secretFlag := n.get("isSecret") != nil && n.get("isSecret").str == "true"
			for _, k := range []string{"value", "default"} {
				v := n.get(k)
				if v == nil || v.kind != 's' {
					continue
				}
				name := nm.str
				if secretFlag && !sensitiveName(name) {
					name = "secret"
				}
				if vd, ok := judge(name, v.str); ok {
					d.mcp = true
					d.add(d.strOffset(v, vd.start), vd.rule, v.str[vd.start:vd.end], Finding{Kind: KindMCPConfig, Server: server, Name: nm.str, Where: "registry", prio: 10})
				}
			}
		}
		for _, m := range n.members {
			d.registry(server, m.val, depth+1)
		}
	case 'a':
		for _, it := range n.items {
			d.registry(server, it, depth+1)
		}
	}
}

// strOffset returns the byte offset in the file of character i of a string
// node's value: exact when the file holds the value as is (no escapes),
// else the first place the value's start is found, else the node.
func (d *doc) strOffset(n *jnode, i int) int {
	start := n.start
	if start < len(d.b) && (d.b[start] == '"' || d.b[start] == '\'') {
		start++
	}
	if start+len(n.str) <= len(d.b) && string(d.b[start:start+len(n.str)]) == n.str {
		return start + i
	}
	probe := n.str[i:]
	if len(probe) > 16 {
		probe = probe[:16]
	}
	limit := min(len(d.b), n.start+2*len(n.str)+256)
	if probe != "" && n.start < limit {
		if j := bytes.Index(d.b[n.start:limit], []byte(probe)); j >= 0 {
			return n.start + j
		}
	}
	return n.start
}
