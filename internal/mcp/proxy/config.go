package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/secret"
)

// maxConfigSize bounds a proxy configuration file.
const maxConfigSize = 1 << 20

// upstreamKeys are the keys of one entry of `proxies:`.
var upstreamKeys = []string{"client_token", "credential", "headers", "listen", "name", "tls_cert", "tls_key", "upstream"}

// Spec is an upstream as flags or a file give it: a credential for the
// default header, or headers, or both.
type Spec struct {
	Upstream
	// Credential, when Headers is empty, makes the default header
	// Authorization: Bearer {Credential}. With headers, a template must
	// name it.
	Credential string
}

// Resolve turns a Spec into an Upstream, adding the default header.
func (s Spec) Resolve() (Upstream, error) {
	u := s.Upstream
	if s.Credential != "" && !delivery.IsCredentialID(s.Credential) {
		return u, fmt.Errorf("credential %s is not a credential id (lower-case letters, digits, '.', '_' and '-')", show(s.Credential))
	}
	if len(u.Headers) == 0 {
		if s.Credential == "" {
			return u, errors.New("no credential: give the credential to inject (the default header is Authorization: Bearer {credential}), or headers naming credentials")
		}
		u.Headers = []Header{{Name: DefaultHeaderName, Template: fmt.Sprintf(DefaultHeaderTemplate, s.Credential)}}
		return u, nil
	}
	if s.Credential != "" && !slices.ContainsFunc(u.Headers, func(h Header) bool { return strings.Contains(h.Template, "{"+s.Credential+"}") }) {
		return u, fmt.Errorf("credential %q is named by no header template; write {%s} in one, or leave the credential out", s.Credential, s.Credential)
	}
	return u, nil
}

// LoadConfig reads a proxy configuration file:
//
//	proxies:
//	  - name: github
//	    listen: 127.0.0.1:7070
//	    upstream: https://api.githubcopilot.com/mcp/
//	    credential: github-mcp-token       # Authorization: Bearer {github-mcp-token}
//	  - name: notes
//	    listen: 127.0.0.1:7071
//	    upstream: https://notes.example.com/mcp
//	    headers:
//	      X-API-Key: "{notes-api-key}"
//	    client_token: ${file:/run/user/1000/rotator/notes-client-token}
//
// Every problem is reported (as *config.Errors) with the file, line and
// field, and what would be valid; no message repeats a value that looks
// secret.
func LoadConfig(path string) ([]Upstream, error) {
	fail := func(msg string) error {
		return &config.Errors{List: []config.Error{{File: path, Msg: msg}}}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fail(fmt.Sprintf("cannot read the proxy configuration: %v", errors.Unwrap(err)))
	}
	if st.Size() > maxConfigSize {
		return nil, fail(fmt.Sprintf("the file is %d bytes; a proxy configuration is at most %d", st.Size(), maxConfigSize))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fail(fmt.Sprintf("cannot read the proxy configuration: %v", errors.Unwrap(err)))
	}
	return ParseConfig(path, data)
}

// ParseConfig parses the content of a proxy configuration file named name;
// see LoadConfig.
func ParseConfig(name string, data []byte) ([]Upstream, error) {
	p := &cfgParser{file: name}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		// yaml's messages quote the offending text, which could be a
		// secret; only the line is kept.
		line := 0
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			_, _ = fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &line)
		}
		p.add(line, "", "not valid YAML; check the indentation and quoting on this line")
		return nil, p.result()
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		p.add(root.Line, "", "the file must be a mapping with a proxies: list")
		return nil, p.result()
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "proxies" {
			p.add(k.Line, keyName(k.Value), "unknown key; the only top-level key is proxies")
			continue
		}
		list = v
	}
	if list == nil {
		p.add(root.Line, "proxies", "missing: list the upstreams to proxy under proxies:")
		return nil, p.result()
	}
	if list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		p.add(list.Line, "proxies", "must be a non-empty list of upstreams (each with name, listen, upstream and credential or headers)")
		return nil, p.result()
	}
	var out []Upstream
	names, listens := map[string]int{}, map[string]int{}
	for i, n := range list.Content {
		field := fmt.Sprintf("proxies[%d]", i)
		u, ok := p.upstream(field, n)
		if !ok {
			continue
		}
		if prev, dup := names[u.Name]; dup {
			p.add(n.Line, field+".name", fmt.Sprintf("%q is also the name of proxies[%d]; names must differ", u.Name, prev))
		}
		names[u.Name] = i
		if prev, dup := listens[u.Listen]; dup && !strings.HasSuffix(u.Listen, ":0") {
			p.add(n.Line, field+".listen", fmt.Sprintf("%s is also the listen address of proxies[%d]; each upstream needs its own", u.Listen, prev))
		}
		listens[u.Listen] = i
		out = append(out, u)
	}
	if err := p.result(); err != nil {
		return nil, err
	}
	return out, nil
}

type cfgParser struct {
	file string
	errs []config.Error
}

func (p *cfgParser) add(line int, field, msg string) {
	p.errs = append(p.errs, config.Error{File: p.file, Line: line, Field: field, Msg: msg})
}

func (p *cfgParser) result() error {
	if len(p.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(p.errs, func(a, b config.Error) int { return a.Line - b.Line })
	return &config.Errors{List: p.errs}
}

// upstream parses one entry of proxies:.
func (p *cfgParser) upstream(field string, n *yaml.Node) (Upstream, bool) {
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, field, "must be a mapping with name, listen, upstream and credential or headers")
		return Upstream{}, false
	}
	before := len(p.errs)
	var s Spec
	var headersLine, credLine int
	lines := map[string]int{} // key -> line of its value
	str := func(k, v *yaml.Node, dst *string) {
		lines[k.Value] = v.Line
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			p.add(v.Line, field+"."+k.Value, "must be a string")
			return
		}
		*dst = v.Value
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := field + "." + k.Value
		switch k.Value {
		case "name":
			str(k, v, &s.Name)
			if s.Name != "" && !delivery.IsCredentialID(s.Name) {
				p.add(v.Line, f, "must be lower-case letters, digits, '.', '_' and '-'")
			}
		case "listen":
			str(k, v, &s.Listen)
		case "upstream":
			str(k, v, &s.URL)
		case "credential":
			str(k, v, &s.Credential)
			credLine = v.Line
		case "client_token":
			str(k, v, &s.ClientToken)
			if s.ClientToken != "" {
				if _, err := secret.ParseRef(s.ClientToken); err != nil {
					p.add(v.Line, f, "must be a secret reference, never the token itself: "+err.Error())
				}
			}
		case "tls_cert":
			str(k, v, &s.TLSCert)
		case "tls_key":
			str(k, v, &s.TLSKey)
		case "headers":
			headersLine = v.Line
			if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
				p.add(v.Line, f, "must be a mapping of header name to template, such as Authorization: \"Bearer {credential-id}\"")
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				hk, hv := v.Content[j], v.Content[j+1]
				hf := f + "." + hk.Value
				if _, err := parseHeaderName(hk.Value); err != nil {
					p.add(hk.Line, f, err.Error())
					continue
				}
				if hv.Kind != yaml.ScalarNode {
					p.add(hv.Line, hf, "must be a string template, such as \"Bearer {credential-id}\"")
					continue
				}
				if _, err := delivery.ParseTemplate(hv.Value); err != nil {
					p.add(hv.Line, hf, err.Error())
					continue
				}
				s.Headers = append(s.Headers, Header{Name: hk.Value, Template: hv.Value})
			}
		default:
			p.add(k.Line, field+"."+keyName(k.Value), "unknown key; valid keys are "+strings.Join(upstreamKeys, ", "))
		}
	}
	at := func(key string) int {
		if l, ok := lines[key]; ok {
			return l
		}
		return n.Line
	}
	if s.Name == "" {
		p.add(n.Line, field+".name", "missing: name the upstream (used in logs and errors)")
	}
	if s.URL == "" {
		p.add(n.Line, field+".upstream", "missing: the MCP server's endpoint, such as https://mcp.example.com/mcp")
	} else if _, err := checkUpstreamURL(s.URL); err != nil {
		p.add(at("upstream"), field+".upstream", err.Error())
	}
	if s.Listen == "" {
		p.add(n.Line, field+".listen", "missing: the address to listen on, such as 127.0.0.1:7070")
	} else if loopback, err := checkListen(s.Listen, s.TLSCert != "" || s.TLSKey != ""); err != nil {
		p.add(at("listen"), field+".listen", err.Error())
	} else if !loopback && s.ClientToken == "" {
		p.add(at("listen"), field+".client_token", errOpenRelay.Error())
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		p.add(min(at("tls_cert"), at("tls_key")), field+".tls_cert", "give both tls_cert and tls_key, or neither")
	}
	u, err := s.Resolve()
	if err != nil {
		line, f := n.Line, field+".credential"
		switch {
		case credLine > 0:
			line = credLine
		case headersLine > 0:
			line, f = headersLine, field+".headers"
		}
		p.add(line, f, err.Error())
	}
	return u, len(p.errs) == before
}

// keyName renders a key of the file for a field path: as is when it is a
// plain name, else quoted (or hidden when it looks secret).
func keyName(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	return show(k)
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
