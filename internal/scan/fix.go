package scan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Fix rewrites an MCP client configuration (Claude Desktop, Claude Code's
// .mcp.json, Cursor: mcpServers; VS Code: servers and inputs) so that it
// holds no secret:
//
//   - a stdio server runs through 'rotator exec --env NAME=CRED -- CMD ARGS';
//     a secret in an argument becomes "$NAME" through 'sh -c';
//   - a secret header of a remote server moves into 'rotator proxy', and
//     the server's URL points at the proxy;
//   - a secret in a remote server's URL becomes the client's own reference
//     (VS Code: ${input:CRED} with a password input; Cursor: ${env:NAME}).
//
// The file is edited in place by byte offsets: every other byte is kept.
// A backup is written beside it first (FILE.rotator-backup, mode 0600; it
// holds the exposed values, so delete it once they are rotated).
type FixResult struct {
	File   string
	Backup string
	// Changes say what was rewritten, one line each.
	Changes []string
	// Todo are the commands and steps left to the user.
	Todo []string
	// NotFixed are findings that could not be rewritten, with the reason.
	NotFixed []string
	// Config is the rotator configuration that holds the credentials
	// (references only), as Import writes it.
	Config []byte
	// edited are the JSON paths whose values were changed (tests).
	edited map[string]bool
}

// ErrNotFixable is returned for a file Fix does not rewrite.
var ErrNotFixable = errors.New("not a configuration --fix rewrites")

// edit replaces b[start:end] with text.
type edit struct {
	start, end int
	text       string
}

type fixClient int

const (
	clientClaude fixClient = iota // also Claude Code .mcp.json
	clientCursor
	clientVSCode
)

// Fix rewrites the file at path (see FixResult). now dates the imported
// configuration.
func Fix(path string, now time.Time) (*FixResult, error) {
	b, err := readLimited(path, DefaultMaxFileSize)
	if err != nil {
		return nil, err
	}
	d := analyze(path, b)
	root, err := parseJSONC(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: --fix rewrites JSON configurations of Claude Desktop, VS Code and Cursor", path, ErrNotFixable)
	}
	client := clientClaude
	serversKey := "mcpServers"
	switch {
	case filepath.Base(filepath.Dir(path)) == ".vscode" || (d.base == "mcp.json" && root.get("servers") != nil):
		client, serversKey = clientVSCode, "servers"
	case filepath.Base(filepath.Dir(path)) == ".cursor":
		client = clientCursor
	}
	servers := root.get(serversKey)
	if servers == nil || servers.kind != 'o' {
		return nil, fmt.Errorf("%s: %w: no %q object (Claude Desktop, Claude Code and Cursor keep servers under mcpServers, VS Code under servers)", path, ErrNotFixable, serversKey)
	}
	res := &FixResult{File: path, edited: map[string]bool{}}
	findings := d.result()
	ids := map[string]int{}
	byServer := map[string][]Finding{}
	var order []string
	for _, f := range findings {
		if f.Kind != KindMCPConfig {
			continue
		}
		f.Name = nameOr(f.Name, "")
		f.credID = credentialID(f, ids)
		if f.Server == "" || servers.get(f.Server) == nil {
			res.NotFixed = append(res.NotFixed, fmt.Sprintf("%s:%d: %s outside the servers (%s): replace it by hand", path, f.Line, f.Rule, f.Preview))
			continue
		}
		if _, ok := byServer[f.Server]; !ok {
			order = append(order, f.Server)
		}
		byServer[f.Server] = append(byServer[f.Server], f)
	}
	if len(order) == 0 && len(res.NotFixed) == 0 {
		return res, nil // nothing to do
	}
	var edits []edit
	var inputs []string
	port := 8931
	for _, name := range order {
		s := servers.get(name)
		es, ins, p := fixServer(b, client, serversKey, name, s, byServer[name], port, res)
		port = p
		edits = append(edits, es...)
		inputs = append(inputs, ins...)
	}
	if len(inputs) > 0 {
		edits = append(edits, addInputs(b, root, inputs))
		res.edited["inputs"] = true
	}
	out, err := applyEdits(b, edits)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := parseJSONC(out); err != nil {
		return nil, fmt.Errorf("%s: the rewritten file would not parse (%v); nothing was written", path, err)
	}
	if client != clientVSCode && json.Valid(b) && !json.Valid(out) {
		return nil, fmt.Errorf("%s: the rewritten file would not be strict JSON; nothing was written", path)
	}
	if cfg, _, err := Import([]string{path}, now); err == nil {
		res.Config = cfg
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	res.Backup = backupName(path)
	if err := os.WriteFile(res.Backup, b, 0o600); err != nil {
		return nil, fmt.Errorf("writing the backup: %w", err)
	}
	tmp := path + ".rotator-tmp"
	if err := os.WriteFile(tmp, out, st.Mode().Perm()); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return nil, err
	}
	res.Todo = append(res.Todo,
		"apply the configuration above (fill in its TODOs): rotator apply -f rotator.yaml",
		"rotate every credential listed: the values found were exposed in plain text and are burned (rotator rotate --wait ID), and revoke the old values at their vendors",
		fmt.Sprintf("delete the backup %s once the values are rotated: it holds them", res.Backup),
		"restart the MCP client so that it reads the rewritten configuration")
	return res, nil
}

func backupName(path string) string {
	name := path + ".rotator-backup"
	for i := 2; ; i++ {
		if _, err := os.Stat(name); errors.Is(err, os.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s.rotator-backup.%d", path, i)
	}
}

// fixServer plans the edits of one server entry.
func fixServer(b []byte, client fixClient, serversKey, name string, s *jnode, fs []Finding, port int, res *FixResult) ([]edit, []string, int) {
	var edits []edit
	var inputs []string
	at := serversKey + "." + name
	command := s.get("command")
	remote := false
	for _, k := range []string{"url", "serverUrl", "httpUrl"} {
		if s.get(k) != nil {
			remote = true
		}
	}
	if !remote && command != nil && command.kind == 's' {
		// stdio: rotator exec.
		var envArgs []string
		argSecrets := map[*jnode][]Finding{}
		var argNodes []*jnode
		if a := s.get("args"); a != nil && a.kind == 'a' {
			argNodes = a.items
		}
		env := s.get("env")
		dropEnv := map[string]bool{}
		for _, f := range fs {
			id := f.credID
			switch f.Where {
			case "env":
				if env.member(f.Name) != nil {
					dropEnv[f.Name] = true
					res.edited[at+".env."+f.Name] = true
				}
				envArgs = append(envArgs, "--env", f.Name+"="+id)
				res.Changes = append(res.Changes, fmt.Sprintf("%s: env %s now comes from rotator credential %s (rotator exec)", name, f.Name, id))
			case "arg", "command":
				node := nodeAt(argNodes, f.off)
				if node == nil {
					res.NotFixed = append(res.NotFixed, fmt.Sprintf("%s: %s in the command (%s): move it out by hand", name, f.Rule, f.Preview))
					continue
				}
				v := envVarFor(f)
				envArgs = append(envArgs, "--env", v+"="+id)
				argSecrets[node] = append(argSecrets[node], f)
				res.Changes = append(res.Changes, fmt.Sprintf("%s: the %s in an argument now comes from rotator credential %s as $%s (rotator exec, sh -c)", name, f.Description, id, v))
			default:
				res.NotFixed = append(res.NotFixed, fmt.Sprintf("%s: %s under %q (%s): replace it by hand", name, f.Rule, f.Name, f.Preview))
			}
		}
		if len(envArgs) == 0 {
			return edits, inputs, port
		}
		if env != nil {
			edits = append(edits, deleteMembers(b, env, dropEnv)...)
		}
		newArgs := append([]string{"exec"}, envArgs...)
		newArgs = append(newArgs, "--")
		if len(argSecrets) == 0 {
			newArgs = append(newArgs, command.str)
			for _, a := range argNodes {
				newArgs = append(newArgs, a.str)
			}
		} else {
			script := []string{"exec", shellQuote(command.str)}
			for _, a := range argNodes {
				fs, ok := argSecrets[a]
				if !ok {
					script = append(script, shellQuote(a.str))
					continue
				}
				f := fs[0]
				v := envVarFor(f)
				if f.Rule == "database-url-password" {
					script = append(script, `"$`+v+`"`) // the credential is the whole connection string
				} else {
					script = append(script, shellQuote(f.prefix)+`"$`+v+`"`+shellQuote(f.suffix))
				}
			}
			newArgs = append(newArgs, "sh", "-c", strings.Join(script, " "))
		}
		edits = append(edits, edit{command.start, command.end, jsonString("rotator")})
		res.edited[at+".command"] = true
		res.edited[at+".args"] = true
		argsText := jsonArray(newArgs)
		if a := s.get("args"); a != nil {
			edits = append(edits, edit{a.start, a.end, argsText})
		} else {
			edits = append(edits, edit{command.end, command.end, `, "args": ` + argsText})
		}
		res.Todo = append(res.Todo, fmt.Sprintf("%s: rotator exec reads the credentials from rotator's store or service (rotator exec --help)", name))
		return edits, inputs, port
	}
	// Remote server.
	var urlNode *jnode
	var urlKey string
	for _, k := range []string{"url", "serverUrl", "httpUrl"} {
		if n := s.get(k); n != nil && n.kind == 's' {
			urlNode, urlKey = n, k
		}
	}
	headers := s.get("headers")
	dropHeaders := map[string]bool{}
	var proxyHeaders []string
	var proxyCred string
	newURL := ""
	if urlNode != nil {
		newURL = urlNode.str
	}
	for _, f := range fs {
		id := f.credID
		switch {
		case f.Where == "header" && headers != nil && urlNode != nil:
			if headers.member(f.Name) != nil {
				dropHeaders[f.Name] = true
				res.edited[at+".headers."+f.Name] = true
			}
			proxyHeaders = append(proxyHeaders, fmt.Sprintf("--header '%s=%s{%s}%s'", f.Name, f.prefix, id, f.suffix))
			if proxyCred == "" {
				proxyCred = id
			}
			res.Changes = append(res.Changes, fmt.Sprintf("%s: header %s now added by rotator proxy from credential %s", name, f.Name, id))
		case f.Where == "url" && urlNode != nil && client == clientVSCode:
			newURL = strings.Replace(newURL, f.value, "${input:"+id+"}", 1)
			inputs = append(inputs, id)
			res.Changes = append(res.Changes, fmt.Sprintf("%s: the secret in the URL is now ${input:%s} (VS Code keeps the value in its secret storage)", name, id))
		case f.Where == "url" && urlNode != nil && client == clientCursor:
			v := envVarFor(f)
			newURL = strings.Replace(newURL, f.value, "${env:"+v+"}", 1)
			res.Changes = append(res.Changes, fmt.Sprintf("%s: the secret in the URL is now ${env:%s}", name, v))
			res.Todo = append(res.Todo, fmt.Sprintf("%s: start Cursor with the value in its environment: rotator exec --env %s=%s -- cursor", name, v, id))
		default:
			res.NotFixed = append(res.NotFixed, fmt.Sprintf("%s: %s in %s (%s): this client has no reference for it; replace it by hand", name, f.Rule, nameOr(f.Name, f.Where), f.Preview))
		}
	}
	if len(proxyHeaders) > 0 {
		edits = append(edits, deleteMembers(b, headers, dropHeaders)...)
		u, err := url.Parse(newURL)
		if err != nil || u.Host == "" {
			res.NotFixed = append(res.NotFixed, fmt.Sprintf("%s: URL does not parse; cannot point it at rotator proxy", name))
			return nil, nil, port
		}
		upstream := u.Scheme + "://" + u.Host
		listen := fmt.Sprintf("127.0.0.1:%d", port)
		port++
		u.Scheme, u.Host = "http", listen
		newURL = u.String()
		res.Todo = append(res.Todo, fmt.Sprintf("%s: run the proxy the client now talks to: rotator proxy --listen %s --upstream %s --credential %s %s", name, listen, upstream, proxyCred, strings.Join(proxyHeaders, " ")))
	}
	if urlNode != nil && newURL != urlNode.str {
		edits = append(edits, edit{urlNode.start, urlNode.end, jsonString(newURL)})
		res.edited[at+"."+urlKey] = true
	}
	return edits, inputs, port
}

// nodeAt returns the string node among nodes that holds offset off.
func nodeAt(nodes []*jnode, off int) *jnode {
	for _, n := range nodes {
		if n.kind == 's' && off >= n.start && off < n.end {
			return n
		}
	}
	return nil
}

// deleteMembers removes members of an object with their commas, and the
// lines they stood on when each had one to itself; an object left empty
// becomes {}.
func deleteMembers(b []byte, obj *jnode, names map[string]bool) []edit {
	var keep, drop []int
	for i, m := range obj.members {
		if names[m.key] {
			drop = append(drop, i)
		} else {
			keep = append(keep, i)
		}
	}
	if len(drop) == 0 {
		return nil
	}
	if len(keep) == 0 {
		return []edit{{obj.start, obj.end, "{}"}}
	}
	lastKept := keep[len(keep)-1]
	var edits []edit
	for _, i := range drop {
		m := obj.members[i]
		if i > lastKept {
			continue // in the trailing block below
		}
		next := obj.members[i+1]
		s, e := lineStart(b, m.keyStart), lineStart(b, next.keyStart)
		if s == m.keyStart || e == next.keyStart {
			s, e = m.keyStart, next.keyStart
		}
		edits = append(edits, edit{s, e, ""})
	}
	if last := obj.members[len(obj.members)-1]; len(obj.members)-1 > lastKept {
		// Members after the last kept one: from its value's end, which
		// drops the comma after it too.
		edits = append(edits, edit{obj.members[lastKept].val.end, last.val.end, ""})
	}
	return edits
}

// lineStart returns the start of the line holding off when only blanks
// precede off on it, else off.
func lineStart(b []byte, off int) int {
	i := off
	for i > 0 && (b[i-1] == ' ' || b[i-1] == '\t') {
		i--
	}
	if i == 0 || b[i-1] == '\n' {
		return i
	}
	return off
}

// addInputs adds VS Code password inputs for the ids, to an existing
// "inputs" array or as a new one at the start of the file's object.
func addInputs(b []byte, root *jnode, ids []string) edit {
	var items []string
	for _, id := range ids {
		items = append(items, fmt.Sprintf(`{"type": "promptString", "id": %s, "description": %s, "password": true}`,
			jsonString(id), jsonString("rotator credential "+id+" (rotate it with rotator; paste the current value)")))
	}
	if in := root.get("inputs"); in != nil && in.kind == 'a' {
		pos := in.end - 1
		k := pos
		for k > in.start+1 && (b[k-1] == ' ' || b[k-1] == '\t' || b[k-1] == '\r' || b[k-1] == '\n') {
			k--
		}
		text := strings.Join(items, ", ")
		if len(in.items) > 0 && b[k-1] != ',' {
			text = ", " + text
		}
		return edit{k, k, text}
	}
	return edit{root.start + 1, root.start + 1, "\n  \"inputs\": [" + strings.Join(items, ", ") + "],"}
}

func applyEdits(b []byte, edits []edit) ([]byte, error) {
	sort.Slice(edits, func(i, j int) bool { return edits[i].start > edits[j].start })
	out := append([]byte(nil), b...)
	last := len(b) + 1
	for _, e := range edits {
		if e.end > last {
			return nil, fmt.Errorf("overlapping edits at byte %d", e.start)
		}
		out = append(out[:e.start], append([]byte(e.text), out[e.end:]...)...)
		last = e.start
	}
	return out, nil
}

func jsonString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(buf.String(), "\n")
}

func jsonArray(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = jsonString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	if s == "" {
		return ""
	}
	if strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@=,+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
