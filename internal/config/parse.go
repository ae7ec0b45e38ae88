package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/rotatorhq/rotator/internal/duration"
	"github.com/rotatorhq/rotator/internal/runbook"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/providers"
	provreg "github.com/rotatorhq/rotator/providers/registry"
	"github.com/rotatorhq/rotator/targets"
	targetreg "github.com/rotatorhq/rotator/targets/registry"
)

// Valid keys, as listed in "unknown key" errors.
var (
	topKeys        = []string{"credentials", "delivery", "notify", "providers", "targets"}
	credentialKeys = []string{
		"consumer", "grace", "id", "labels", "max_age", "owner", "provider", "renew_at",
		"renew_before", "runbook", "schedule", "scope", "settings", "targets", "window",
	}
	windowKeys  = []string{"end", "start", "timezone"}
	bindingKeys = []string{"key", "target"}
)

var (
	slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
	hhmmRE = regexp.MustCompile(`^(?:[01][0-9]|2[0-3]):[0-5][0-9]$`)

	cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
)

const (
	slugRule      = "must be a slug: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters"
	durationForms = "use a value such as 30s, 15m, 1h, 1h30m or 30d"
	cronForms     = `use 5 fields ("0 3 * * *"), a descriptor (@daily, @every 45m), optionally prefixed with CRON_TZ=Area/City`
)

// parser accumulates the errors and warnings of one document.
type parser struct {
	file  string
	opts  Options
	errs  []Error
	warns []Error
	// nodes counts the values aliases added to settings; aliased is how
	// many aliases toAny is inside.
	nodes, aliased int
	// suspects are strings of the document that were found to be secrets;
	// finish removes them from every message as a last line of defence.
	suspects map[string]bool
	// suspectOrder is suspects in the order scrub removes them.
	suspectOrder []string
	runbooks     map[string]runbookResult
	// strs holds one copy of each short string credentials repeat.
	strs map[string]string
	// labelSets holds one map of each set of labels credentials repeat.
	labelSets map[string]map[string]string
	// zones remembers which time zone names load.
	zones map[string]bool
	reg   registries
}

// registries are the plugin registries a parser validates against; tests
// add types the built-in registries lack.
type registries struct {
	provider      func(typ string) (providers.Factory, bool)
	providerTypes func() []string
	target        func(typ string) (targets.Factory, bool)
	targetTypes   func() []string
}

var builtin = registries{
	provider: provreg.Lookup, providerTypes: provreg.Types,
	target: targetreg.Lookup, targetTypes: targetreg.Types,
}

type runbookResult struct {
	ref runbook.Ref
	err error
}

func newParser(file string, opts Options, reg registries) *parser {
	return &parser{file: file, opts: opts, reg: reg, suspects: map[string]bool{}, runbooks: map[string]runbookResult{},
		strs: map[string]string{}, labelSets: map[string]map[string]string{}, zones: map[string]bool{}}
}

func (p *parser) errorf(line int, field, format string, args ...any) {
	p.errs = append(p.errs, errorf(p.file, line, field, format, args...))
}

func (p *parser) warnf(line int, field, format string, args ...any) {
	p.warns = append(p.warns, errorf(p.file, line, field, format, args...))
}

// finish scrubs and sorts the errors and warnings.
func (p *parser) finish() []Error {
	for i := range p.errs {
		p.errs[i] = p.scrub(p.errs[i])
	}
	for i := range p.warns {
		p.warns[i] = p.scrub(p.warns[i])
	}
	return sortErrors(p.errs)
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// parse decodes the document and validates it. It always returns a Config;
// Parse discards it when there are errors.
func (p *parser) parse(data []byte) *Config {
	cfg := &Config{File: p.file, Providers: map[string]Provider{}, Targets: map[string]Target{}}
	doc, ok := p.decode(data)
	if !ok {
		return cfg
	}
	if len(doc.Content) == 0 {
		return cfg // an empty file: nothing to manage
	}
	root := deref(doc.Content[0])
	if isNull(root) {
		return cfg
	}
	p.scanSecrets(root)
	if root.Kind != yaml.MappingNode {
		p.errorf(root.Line, "", "the document must be a mapping with the keys %s, got %s", quoteList(topKeys), kindName(root))
		return cfg
	}
	// Credentials last: they refer to providers and targets.
	if credNode := p.topLevel(cfg, root); credNode != nil {
		p.credentials(cfg, credNode)
	}
	p.credentialRefs(cfg)
	p.unused(cfg)
	return cfg
}

// topLevel parses the providers and targets of the root mapping and
// returns the credentials node (nil if absent).
func (p *parser) topLevel(cfg *Config, root *yaml.Node) (credNode *yaml.Node) {
	for _, e := range p.pairs(root, "") {
		switch e.key {
		case "providers":
			p.providers(cfg, e.val)
		case "targets":
			p.targets(cfg, e.val)
		case "credentials":
			credNode = e.val
		case "notify":
			p.notifySection(cfg, e.val)
		case "delivery":
			p.delivery(cfg, e.val)
		default:
			p.errorf(e.knode.Line, join("", e.key), "unknown key; valid top-level keys are %s", quoteList(topKeys))
		}
	}
	return credNode
}

// decode parses the YAML text into a document node, reporting syntax
// errors with their line. yaml's messages describe the syntax, not the
// content, and finish scrubs them anyway.
func (p *parser) decode(data []byte) (doc *yaml.Node, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			p.errorf(0, "", "invalid YAML: the parser failed on this document")
			doc, ok = nil, false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var d yaml.Node
	if err := dec.Decode(&d); err != nil {
		if errors.Is(err, io.EOF) {
			return &d, true
		}
		p.yamlError(err)
		return nil, false
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		p.yamlError(err)
		return nil, false
	default:
		p.errorf(extra.Line, "", "a second YAML document (after ---) is not supported; put everything in one document")
		return nil, false
	}
	return &d, true
}

func (p *parser) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
		line, _ = strconv.Atoi(msg[m[2]:m[3]])
		msg = msg[:m[0]] + msg[m[1]:]
	}
	p.errorf(line, "", "invalid YAML: %s", msg)
}

// pairs returns the entries of a mapping node, with merge keys (<<)
// expanded; explicit keys win over merged ones. It reports duplicate keys
// and keys that are not plain values.
func (p *parser) pairs(n *yaml.Node, path string) []pair {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var out []pair
	first := map[string]int{}
	var merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kd := deref(k)
		if kd == nil || kd.Kind != yaml.ScalarNode {
			p.errorf(k.Line, path, "keys must be plain values, got %s", kindName(k))
			continue
		}
		if kd.Tag == "!!merge" || (kd.Value == "<<" && kd.Style == 0 && kd.Tag != "!!str") {
			merged = append(merged, p.merge(v, path, 0)...)
			continue
		}
		if line, dup := first[kd.Value]; dup {
			p.errorf(k.Line, join(path, kd.Value), "duplicate key; first defined at line %d", line)
			continue
		}
		first[kd.Value] = k.Line
		out = append(out, pair{key: kd.Value, knode: k, val: v})
	}
	for _, m := range merged {
		if _, ok := first[m.key]; !ok {
			first[m.key] = m.knode.Line
			out = append(out, m)
		}
	}
	return out
}

// merge returns the entries a merge key's value contributes: a mapping, or
// a list of mappings where earlier ones win.
func (p *parser) merge(v *yaml.Node, path string, depth int) []pair {
	d := deref(v)
	switch {
	case d == nil || depth > 1:
	case d.Kind == yaml.MappingNode:
		return p.pairs(d, path)
	case d.Kind == yaml.SequenceNode:
		var out []pair
		seen := map[string]bool{}
		for _, item := range d.Content {
			for _, e := range p.merge(item, path, depth+1) {
				if !seen[e.key] {
					seen[e.key] = true
					out = append(out, e)
				}
			}
		}
		return out
	}
	p.errorf(v.Line, path, "a merge key (<<) must name a mapping or a list of mappings, got %s", kindName(v))
	return nil
}

// toAny converts a node to the value a settings.Map holds and records the
// line of every nested field in lines (keyed by dotted path relative to the
// settings, such as verify.mcp_probe.url or scopes[0]).
func (p *parser) toAny(n *yaml.Node, rel, path string, lines map[string]int, depth int) any {
	// Count what aliases add: values written out are bounded by the size of
	// the file.
	if n.Kind == yaml.AliasNode {
		p.aliased++
		defer func() { p.aliased-- }()
	}
	if p.aliased > 0 {
		p.nodes++
	}
	d := deref(n)
	switch {
	case d == nil || depth > maxDepth:
		p.errorf(n.Line, path, "nested too deeply (or an alias refers to itself)")
		return nil
	case p.nodes > maxNodes:
		if p.nodes == maxNodes+1 {
			p.errorf(n.Line, path, "the document expands to more than %d values (through aliases); simplify it", maxNodes)
		}
		return nil
	}
	switch d.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for _, e := range p.pairs(d, path) {
			sub := e.key
			if rel != "" {
				sub = rel + "." + e.key
			}
			lines[sub] = e.knode.Line
			m[p.intern(e.key)] = p.toAny(e.val, sub, join(path, e.key), lines, depth+1)
		}
		return m
	case yaml.SequenceNode:
		list := make([]any, 0, len(d.Content))
		for i, item := range d.Content {
			sub := index(rel, i)
			lines[sub] = item.Line
			list = append(list, p.toAny(item, sub, index(path, i), lines, depth+1))
		}
		return list
	case yaml.ScalarNode:
		if v, ok := scalarValue(d).(string); ok {
			return p.intern(v)
		}
		return scalarValue(d)
	}
	return nil
}

// fieldLine finds the line of a plugin's settings field: the field itself,
// else its closest enclosing field, else def.
func fieldLine(lines map[string]int, field string, def int) int {
	for f := field; f != ""; {
		if l, ok := lines[f]; ok {
			return l
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return def
}

// settingsErrors reports a plugin validator's errors at the lines of their
// fields.
func (p *parser) settingsErrors(errs settings.Errors, path string, lines map[string]int, def int) {
	for _, e := range errs {
		field := path
		if e.Field != "" {
			if strings.HasPrefix(e.Field, "[") {
				field += e.Field
			} else {
				field += "." + e.Field
			}
		}
		p.errorf(fieldLine(lines, e.Field, def), field, "%s", e.Msg)
	}
}

// scopeErrors reports a provider's scope validator's errors at the lines
// of the scope entries they name ("[i]"), else at the scope (or, without
// one, at the credential).
func (p *parser) scopeErrors(errs settings.Errors, path string, scope *yaml.Node, def int) {
	if len(errs) == 0 {
		return
	}
	lines := map[string]int{}
	if scope != nil {
		def = scope.Line
		if d := deref(scope); d != nil && d.Kind == yaml.SequenceNode {
			for i, item := range d.Content {
				lines[fmt.Sprintf("[%d]", i)] = item.Line
			}
		}
	}
	p.settingsErrors(errs, path, lines, def)
}

// plugin is what providers and targets have in common while parsing.
type plugin struct {
	name     string
	typ      string
	typeLine int
	settings settings.Map
	lines    map[string]int
	line     int
	path     string
}

// plugins parses the providers: or targets: mapping of name → {type, ...}.
func (p *parser) plugins(n *yaml.Node, section string) []plugin {
	d := deref(n)
	if isNull(d) {
		return nil
	}
	if d.Kind != yaml.MappingNode {
		p.errorf(n.Line, section, "must be a mapping of name to settings, got %s", kindName(n))
		return nil
	}
	var out []plugin
	for _, e := range p.pairs(d, section) {
		path := join(section, e.key)
		if !slugRE.MatchString(e.key) {
			p.errorf(e.knode.Line, path, "the name %s", slugRule)
		}
		body := deref(e.val)
		if body == nil || body.Kind != yaml.MappingNode {
			p.errorf(e.val.Line, path, "must be a mapping with a type and its settings, got %s", kindName(e.val))
			continue
		}
		pl := plugin{name: e.key, line: e.knode.Line, path: path, settings: settings.Map{}, lines: map[string]int{}}
		for _, f := range p.pairs(body, path) {
			if f.key == "type" {
				pl.typeLine = f.knode.Line
				if t := deref(f.val); t != nil && t.Kind == yaml.ScalarNode && !isNull(t) {
					pl.typ = t.Value
				} else {
					p.errorf(f.val.Line, join(path, "type"), "must be a type name, got %s", kindName(f.val))
					pl.typ = "\x00" // reported; skip validation
				}
				continue
			}
			pl.lines[f.key] = f.knode.Line
			pl.settings[f.key] = p.toAny(f.val, f.key, join(path, f.key), pl.lines, 1)
		}
		if pl.typ == "" {
			p.errorf(pl.line, join(path, "type"), "type is required")
		}
		out = append(out, pl)
	}
	return out
}

func (p *parser) providers(cfg *Config, n *yaml.Node) {
	for _, pl := range p.plugins(n, "providers") {
		cfg.Providers[pl.name] = Provider{Name: pl.name, Type: pl.typ, Settings: pl.settings, Line: pl.line, Lines: pl.lines}
		if pl.typ == "" || pl.typ == "\x00" {
			continue
		}
		f, ok := p.reg.provider(pl.typ)
		if !ok {
			p.errorf(pl.typeLine, join(pl.path, "type"), "unknown provider type %s; registered types are %s", show(pl.typ), quoteList(p.reg.providerTypes()))
			continue
		}
		if f.ValidateProvider != nil {
			p.settingsErrors(f.ValidateProvider(pl.settings), pl.path, pl.lines, pl.line)
		}
	}
}

func (p *parser) targets(cfg *Config, n *yaml.Node) {
	for _, pl := range p.plugins(n, "targets") {
		cfg.Targets[pl.name] = Target{Name: pl.name, Type: pl.typ, Settings: pl.settings, Line: pl.line, Lines: pl.lines}
		if pl.typ == "" || pl.typ == "\x00" {
			continue
		}
		f, ok := p.reg.target(pl.typ)
		if !ok {
			p.errorf(pl.typeLine, join(pl.path, "type"), "unknown target type %s; registered types are %s", show(pl.typ), quoteList(p.reg.targetTypes()))
			continue
		}
		if f.Validate != nil {
			p.settingsErrors(f.Validate(pl.settings), pl.path, pl.lines, pl.line)
		}
	}
}

func (p *parser) credentials(cfg *Config, n *yaml.Node) {
	d := deref(n)
	if isNull(d) {
		return
	}
	if d.Kind != yaml.SequenceNode {
		p.errorf(n.Line, "credentials", "must be a list of credentials (each item starting with \"- id: ...\"), got %s", kindName(n))
		return
	}
	firstID := map[string]int{}
	for i, item := range d.Content {
		p.credentialItem(cfg, item, i, firstID)
	}
}

// credentialItem parses item i of credentials: and adds it to cfg unless
// its id is taken; firstID holds the line of every id so far.
func (p *parser) credentialItem(cfg *Config, item *yaml.Node, i int, firstID map[string]int) {
	c, ok := p.credential(cfg, item, index("credentials", i))
	if !ok {
		return
	}
	if c.ID != "" {
		if line, dup := firstID[c.ID]; dup {
			p.errorf(c.Line, index("credentials", i)+".id", "duplicate credential id %s; first defined at line %d", show(c.ID), line)
			return
		}
		firstID[c.ID] = c.Line
	}
	cfg.Credentials = append(cfg.Credentials, c)
}

// credential parses one item of credentials:. ok is false when the item is
// not a mapping at all.
func (p *parser) credential(cfg *Config, n *yaml.Node, path string) (c Credential, ok bool) {
	d := deref(n)
	if d == nil || d.Kind != yaml.MappingNode {
		p.errorf(n.Line, path, "must be a mapping with id, consumer, provider, max_age, runbook, ...; got %s", kindName(n))
		return c, false
	}
	c.Line = n.Line
	fields := map[string]pair{}
	for _, e := range p.pairs(d, path) {
		if !slices.Contains(credentialKeys, e.key) {
			p.errorf(e.knode.Line, join(path, e.key), "unknown key; valid keys are %s", quoteList(credentialKeys))
			continue
		}
		fields[e.key] = e
	}
	str := func(key string, required bool, why string) (string, int) {
		e, ok := fields[key]
		if !ok || isNull(e.val) {
			if required {
				p.errorf(c.Line, join(path, key), "%s is required%s", key, why)
			}
			return "", c.Line
		}
		if v, ok := p.scalar(e.val, join(path, key)); ok {
			if required && strings.TrimSpace(v) == "" {
				p.errorf(e.val.Line, join(path, key), "must not be empty%s", why)
			}
			return v, e.val.Line
		}
		return "", e.val.Line
	}

	var line int
	c.ID, line = str("id", true, "")
	if c.ID != "" && !slugRE.MatchString(c.ID) {
		p.errorf(line, join(path, "id"), "%s", slugRule)
	}
	c.Consumer, _ = str("consumer", true, ": name the MCP server or client that uses the credential, such as mcp-server-github")
	c.Owner, _ = str("owner", false, "")
	c.Provider, line = str("provider", true, "")
	c.Consumer, c.Owner, c.Provider = p.intern(c.Consumer), p.intern(c.Owner), p.intern(c.Provider)
	prov, haveProv := cfg.Providers[c.Provider]
	if c.Provider != "" && !haveProv {
		p.errorf(line, join(path, "provider"), "unknown provider %s; defined providers are %s", show(c.Provider), quoteList(slices.Sorted(maps.Keys(cfg.Providers))))
	}
	var scopeNode *yaml.Node
	if e, ok := fields["scope"]; ok {
		c.Scope = p.stringList(e.val, join(path, "scope"), "[repo:read, issues:write]")
		scopeNode = e.val
	}
	if e, ok := fields["labels"]; ok {
		c.Labels = p.labels(e.val, join(path, "labels"))
	}
	c.Settings = settings.Map{}
	settingLines := map[string]int{}
	settingsLine := c.Line
	if e, ok := fields["settings"]; ok && !isNull(e.val) {
		settingsLine = e.knode.Line
		if sd := deref(e.val); sd != nil && sd.Kind == yaml.MappingNode {
			if m, ok := p.toAny(sd, "", join(path, "settings"), settingLines, 1).(map[string]any); ok {
				c.Settings = m
			}
		} else {
			p.errorf(e.val.Line, join(path, "settings"), "must be a mapping of provider settings, got %s", kindName(e.val))
		}
	}
	if haveProv {
		if f, ok := p.reg.provider(prov.Type); ok && f.ValidateCredential != nil {
			p.settingsErrors(f.ValidateCredential(c.Settings), join(path, "settings"), settingLines, settingsLine)
		}
		if f, ok := p.reg.provider(prov.Type); ok && f.ValidateScope != nil {
			p.scopeErrors(f.ValidateScope(c.Scope), join(path, "scope"), scopeNode, c.Line)
		}
	}
	c.Policy = p.policy(fields, path, c.Line)
	if haveProv {
		p.capabilityWarnings(c, prov, fields, path)
	}
	c.Runbook, line = str("runbook", true, ": link the rotation runbook, such as runbooks/generated.md#rotation")
	c.Runbook = p.intern(c.Runbook)
	if c.Runbook != "" {
		c.RunbookRef = p.runbook(c.Runbook, line, join(path, "runbook"))
	}
	if e, ok := fields["targets"]; ok {
		c.Targets = p.bindings(cfg, e.val, join(path, "targets"))
	}
	return c, true
}

// scalar returns the text of a scalar node, reporting anything else.
func (p *parser) scalar(n *yaml.Node, path string) (string, bool) {
	d := deref(n)
	if d == nil || d.Kind != yaml.ScalarNode {
		p.errorf(n.Line, path, "must be a single value, got %s", kindName(n))
		return "", false
	}
	return d.Value, true
}

func (p *parser) stringList(n *yaml.Node, path, example string) []string {
	d := deref(n)
	if isNull(d) {
		return nil
	}
	if d.Kind != yaml.SequenceNode {
		p.errorf(n.Line, path, "must be a list of strings such as %s, got %s", example, kindName(n))
		return nil
	}
	out := make([]string, 0, len(d.Content))
	for i, item := range d.Content {
		it := deref(item)
		if it == nil || it.Kind != yaml.ScalarNode || isNull(it) {
			p.errorf(item.Line, index(path, i), "must be a string, got %s", kindName(item))
			continue
		}
		out = append(out, p.intern(it.Value))
	}
	return out
}

func (p *parser) labels(n *yaml.Node, path string) map[string]string {
	d := deref(n)
	if isNull(d) {
		return nil
	}
	if d.Kind != yaml.MappingNode {
		p.errorf(n.Line, path, "must be a mapping of strings such as {team: platform, env: prod}, got %s", kindName(n))
		return nil
	}
	if n := len(d.Content) / 2; n > MaxLabels && n <= MaxItems { // more than MaxItems: the secret scan reported it
		p.errorf(d.Line, path, "has %d labels, over the limit of %d per credential", n, MaxLabels)
	}
	out := map[string]string{}
	for _, e := range p.pairs(d, path) {
		if k := deref(e.knode); k == nil || k.Tag != "!!str" {
			p.errorf(e.knode.Line, join(path, e.key), "label names must be strings, got %s; quote it", kindName(e.knode))
			continue
		}
		v := deref(e.val)
		if v == nil || v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
			hint := ""
			if v != nil && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
				hint = "; quote it"
			}
			p.errorf(e.val.Line, join(path, e.key), "label values must be strings, got %s%s", kindName(e.val), hint)
			continue
		}
		out[p.intern(e.key)] = p.intern(v.Value)
	}
	return p.shareLabels(out)
}

// duration parses a duration field; ok is false when absent or invalid.
func (p *parser) duration(fields map[string]pair, key, path string) (time.Duration, int, bool) {
	e, present := fields[key]
	if !present || isNull(e.val) {
		return 0, 0, false
	}
	field := join(path, key)
	v, isScalar := p.scalar(e.val, field)
	if !isScalar {
		return 0, e.val.Line, false
	}
	d, err := duration.Parse(v)
	if err != nil {
		p.errorf(e.val.Line, field, "invalid duration %s; %s", show(v), durationForms)
		return 0, e.val.Line, false
	}
	return d, e.val.Line, true
}

func (p *parser) policy(fields map[string]pair, path string, line int) store.Policy {
	var pol store.Policy
	maxAge, maxLine, haveMax := p.duration(fields, "max_age", path)
	switch {
	case haveMax && maxAge <= 0:
		p.errorf(maxLine, join(path, "max_age"), "must be greater than 0; it is the longest a value may live, such as 1h or 30d")
	case haveMax:
		pol.MaxAge = maxAge
	case maxLine == 0:
		p.errorf(line, join(path, "max_age"), "max_age is required: the longest a value may live, such as 1h or 30d")
	}
	before, beforeLine, haveBefore := p.duration(fields, "renew_before", path)
	if haveBefore {
		pol.RenewBefore = before
		if pol.MaxAge > 0 && before >= pol.MaxAge {
			p.errorf(beforeLine, join(path, "renew_before"), "must be less than max_age (%s), got %s",
				duration.Format(pol.MaxAge), duration.Format(before))
		}
	}
	if e, ok := fields["renew_at"]; ok && !isNull(e.val) {
		field := join(path, "renew_at")
		if v, ok := p.scalar(e.val, field); ok {
			f, err := strconv.ParseFloat(v, 64)
			switch {
			case err != nil || f <= 0 || f >= 1:
				p.errorf(e.val.Line, field, "must be a fraction of max_age between 0 and 1 (exclusive), such as 0.75, got %s", show(v))
			case haveBefore || (fields["renew_before"].val != nil && !isNull(fields["renew_before"].val)):
				p.errorf(e.val.Line, field, "renew_at and renew_before are mutually exclusive; keep one")
			default:
				pol.RenewAt = f
			}
		}
	}
	if e, ok := fields["schedule"]; ok && !isNull(e.val) {
		field := join(path, "schedule")
		if v, ok := p.scalar(e.val, field); ok {
			if msg := checkSchedule(v); msg != "" {
				p.errorf(e.val.Line, field, "%s", msg)
			} else {
				pol.Schedule = p.intern(v)
			}
		}
	}
	if e, ok := fields["window"]; ok && !isNull(e.val) {
		pol.Window = p.window(e.val, join(path, "window"))
	}
	if grace, _, ok := p.duration(fields, "grace", path); ok {
		pol.Grace = grace
	}
	return pol
}

// checkSchedule returns what is wrong with a cron schedule, or "".
func checkSchedule(spec string) (msg string) {
	quoted := show(spec)
	if strings.TrimSpace(spec) == "" {
		return "must not be empty; " + cronForms
	}
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		return fmt.Sprintf("invalid schedule %s: a time zone prefix must be followed by a space and the schedule; %s", quoted, cronForms)
	}
	if rest, ok := strings.CutPrefix(spec, "@every "); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(rest)); err == nil && d < time.Second {
			return fmt.Sprintf("invalid schedule %s: @every needs a duration of at least 1s", quoted)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprintf("invalid schedule %s; %s", quoted, cronForms)
		}
	}()
	sched, err := cronParser.Parse(spec)
	if err != nil {
		detail := ""
		if quoted != "(value not shown)" {
			detail = ": " + err.Error()
		}
		return fmt.Sprintf("invalid schedule %s%s; %s", quoted, detail, cronForms)
	}
	if sched.Next(time.Now()).IsZero() {
		return fmt.Sprintf("schedule %s never fires (no such date)", quoted)
	}
	return ""
}

func (p *parser) window(n *yaml.Node, path string) *store.Window {
	d := deref(n)
	if d == nil || d.Kind != yaml.MappingNode {
		p.errorf(n.Line, path, `must be a mapping such as {start: "02:00", end: "05:00", timezone: Europe/Berlin}, got %s`, kindName(n))
		return nil
	}
	w := &store.Window{}
	valid := true
	seen := map[string]bool{}
	for _, e := range p.pairs(d, path) {
		field := join(path, e.key)
		if !slices.Contains(windowKeys, e.key) {
			p.errorf(e.knode.Line, field, "unknown key; valid keys are %s", quoteList(windowKeys))
			continue
		}
		seen[e.key] = true
		v, ok := p.scalar(e.val, field)
		if !ok {
			valid = false
			continue
		}
		switch e.key {
		case "start", "end":
			if !hhmmRE.MatchString(v) {
				// An unquoted 02:00 is still the string "02:00" in YAML 1.2.
				p.errorf(e.val.Line, field, "must be a time of day as HH:MM (00:00 to 23:59), got %s", show(v))
				valid = false
			}
			if e.key == "start" {
				w.Start = p.intern(v)
			} else {
				w.End = p.intern(v)
			}
		case "timezone":
			// Empty means UTC; Local would depend on the host.
			if !p.knownZone(v) {
				p.errorf(e.val.Line, field, "unknown time zone %s; use an IANA name such as UTC, Europe/Berlin or America/New_York", show(v))
				valid = false
			}
			w.Timezone = p.intern(v)
		}
	}
	for _, k := range []string{"start", "end"} {
		if !seen[k] {
			p.errorf(n.Line, join(path, k), "%s is required", k)
			valid = false
		}
	}
	if valid && w.Start == w.End {
		p.errorf(n.Line, path, "start and end are equal (%s); the window would be empty", w.Start)
		valid = false
	}
	if !valid {
		return nil
	}
	return w
}

func (p *parser) runbook(ref string, line int, field string) runbook.Ref {
	path, anchor := runbook.Split(ref)
	if strings.TrimSpace(path) == "" {
		p.errorf(line, field, "must name a markdown file, such as runbooks/generated.md#rotation")
		return runbook.Ref{Path: path, Anchor: anchor}
	}
	if !p.opts.CheckRunbooks {
		return runbook.Ref{Path: path, Anchor: anchor}
	}
	res, ok := p.runbooks[ref]
	if !ok {
		res.ref, res.err = runbook.Resolve(p.opts.BaseDir, ref)
		p.runbooks[ref] = res
	}
	if res.err != nil {
		p.errorf(line, field, "%v", res.err)
	}
	return res.ref
}

func (p *parser) bindings(cfg *Config, n *yaml.Node, path string) []store.TargetBinding {
	d := deref(n)
	if isNull(d) {
		return nil
	}
	if d.Kind != yaml.SequenceNode {
		p.errorf(n.Line, path, "must be a list such as [{target: local-env, key: GITHUB_TOKEN}], got %s", kindName(n))
		return nil
	}
	var out []store.TargetBinding
	seen := map[store.TargetBinding]int{}
	for i, item := range d.Content {
		ipath := index(path, i)
		it := deref(item)
		if it == nil || it.Kind != yaml.MappingNode {
			p.errorf(item.Line, ipath, "must be a mapping such as {target: local-env, key: GITHUB_TOKEN}, got %s", kindName(item))
			continue
		}
		var b store.TargetBinding
		keyLine := item.Line
		haveTarget := false
		for _, e := range p.pairs(it, ipath) {
			field := join(ipath, e.key)
			if !slices.Contains(bindingKeys, e.key) {
				p.errorf(e.knode.Line, field, "unknown key; valid keys are %s", quoteList(bindingKeys))
				continue
			}
			v, ok := p.scalar(e.val, field)
			if !ok {
				continue
			}
			if e.key == "target" {
				b.Target, haveTarget = p.intern(v), true
				if _, defined := cfg.Targets[v]; !defined {
					p.errorf(e.val.Line, field, "unknown target %s; defined targets are %s", show(v), quoteList(slices.Sorted(maps.Keys(cfg.Targets))))
				}
			} else if !isNull(e.val) {
				b.Key, keyLine = v, e.val.Line
			}
		}
		if !haveTarget {
			p.errorf(item.Line, join(ipath, "target"), "target is required")
			continue
		}
		if t, ok := cfg.Targets[b.Target]; ok && b.Key != "" {
			if f, ok := p.reg.target(t.Type); ok && f.ValidateKey != nil {
				if err := f.ValidateKey(b.Key); err != nil {
					p.errorf(keyLine, join(ipath, "key"), "%v", err)
				}
			}
		}
		if line, dup := seen[b]; dup {
			p.errorf(item.Line, ipath, "duplicate binding; the same target and key are listed at line %d", line)
			continue
		}
		seen[b] = item.Line
		out = append(out, b)
	}
	return out
}

// capabilityWarnings compares a credential's policy with what its
// provider's type can do.
func (p *parser) capabilityWarnings(c Credential, prov Provider, fields map[string]pair, path string) {
	f, ok := p.reg.provider(prov.Type)
	if !ok {
		return
	}
	caps := f.CapabilitiesFor(prov.Settings)
	if e, ok := fields["grace"]; ok && c.Policy.Grace > 0 && !caps.Overlap {
		p.warnf(e.val.Line, join(path, "grace"), "provider %s (type %s) cannot keep the old and the new value valid at once, so the grace period does not protect consumers; consumers may fail between activation and cutover", prov.Name, prov.Type)
	}
	if caps.MaxTTL > 0 && c.Policy.MaxAge > caps.MaxTTL {
		line := c.Line
		if e, ok := fields["max_age"]; ok {
			line = e.val.Line
		}
		p.warnf(line, join(path, "max_age"), "max_age %s exceeds what provider type %s can grant (%s); values will expire earlier",
			duration.Format(c.Policy.MaxAge), prov.Type, duration.Format(caps.MaxTTL))
	}
}

// credentialRefs checks every {credential: ID} reference in provider
// settings: the credential must exist and must not be one of the
// provider's own (its value would depend on itself).
func (p *parser) credentialRefs(cfg *Config) {
	for _, name := range cfg.ProviderNames() {
		pr := cfg.Providers[name]
		refs := settings.CredentialRefs(pr.Settings)
		for _, field := range slices.Sorted(maps.Keys(refs)) {
			id := refs[field]
			path := join(join("providers", name), field)
			line := fieldLine(pr.Lines, field, pr.Line)
			c, ok := cfg.Credential(id)
			switch {
			case !ok:
				ids := make([]string, 0, len(cfg.Credentials))
				for _, c := range cfg.Credentials {
					ids = append(ids, c.ID)
				}
				p.errorf(line, path, "names credential %s, which is not defined; defined credentials are %s", show(id), quoteList(ids))
			case c.Provider == name:
				p.errorf(line, path, "names credential %s of this same provider; a provider cannot take a setting from its own credential's value", show(id))
			}
		}
	}
}

// unused warns about providers and targets no credential refers to.
func (p *parser) unused(cfg *Config) {
	usedProv := map[string]bool{}
	usedTarget := map[string]bool{}
	for _, c := range cfg.Credentials {
		usedProv[c.Provider] = true
		for _, b := range c.Targets {
			usedTarget[b.Target] = true
		}
	}
	for name, pr := range cfg.Providers {
		if !usedProv[name] {
			p.warnf(pr.Line, join("providers", name), "provider is defined but no credential uses it")
		}
	}
	for name, t := range cfg.Targets {
		if !usedTarget[name] {
			p.warnf(t.Line, join("targets", name), "target is defined but no credential publishes to it")
		}
	}
	p.deliveryWarnings(cfg)
}
