package report_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// schemaChecker validates a document against the subset of JSON Schema
// that docs/report-schema.json uses: $ref to #/$defs, type (one or a
// list), enum, required, properties, additionalProperties (false or a
// schema), items, anyOf, minimum, maximum and format date-time.
type schemaChecker struct {
	root map[string]any
	errs []string
}

func loadSchema(t *testing.T) *schemaChecker {
	t.Helper()
	b, err := os.ReadFile("../../docs/report-schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatalf("docs/report-schema.json: %v", err)
	}
	return &schemaChecker{root: root}
}

// validate returns every violation of the schema in doc (decoded with
// UseNumber). It keeps its findings in a checker of its own, so that
// parallel tests may share c.
func (c *schemaChecker) validate(doc any) []string {
	v := &schemaChecker{root: c.root}
	v.check(v.root, doc, "$")
	return v.errs
}

func (c *schemaChecker) fail(path, format string, args ...any) {
	c.errs = append(c.errs, path+": "+fmt.Sprintf(format, args...))
}

func (c *schemaChecker) resolve(s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		name, ok := strings.CutPrefix(ref, "#/$defs/")
		if !ok {
			panic("unsupported $ref " + ref)
		}
		s = c.root["$defs"].(map[string]any)[name].(map[string]any)
	}
}

func typeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, err := x.Int64(); err == nil && !strings.ContainsAny(x.String(), ".eE") {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func (c *schemaChecker) check(schema map[string]any, v any, path string) {
	s := c.resolve(schema)
	if alts, ok := s["anyOf"].([]any); ok {
		saved := c.errs
		for _, alt := range alts {
			c.errs = nil
			c.check(alt.(map[string]any), v, path)
			if len(c.errs) == 0 {
				c.errs = saved
				return
			}
		}
		c.errs = saved
		c.fail(path, "matches no alternative of anyOf")
		return
	}
	if t, ok := s["type"]; ok {
		var allowed []string
		switch x := t.(type) {
		case string:
			allowed = []string{x}
		case []any:
			for _, a := range x {
				allowed = append(allowed, a.(string))
			}
		}
		got := typeOf(v)
		if !slices.Contains(allowed, got) && !(got == "integer" && slices.Contains(allowed, "number")) {
			c.fail(path, "type %s, want %v", got, allowed)
			return
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, v) {
		c.fail(path, "%v is not one of %v", v, enum)
	}
	if n, ok := v.(json.Number); ok {
		f, _ := n.Float64()
		if m, ok := s["minimum"].(float64); ok && f < m {
			c.fail(path, "%v < minimum %v", f, m)
		}
		if m, ok := s["maximum"].(float64); ok && f > m {
			c.fail(path, "%v > maximum %v", f, m)
		}
	}
	if str, ok := v.(string); ok && s["format"] == "date-time" {
		if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
			c.fail(path, "%q is not an RFC 3339 time", str)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range asSlice(s["required"]) {
			if _, ok := x[r.(string)]; !ok {
				c.fail(path, "required field %q is missing", r)
			}
		}
		for k, val := range x {
			if ps, ok := props[k]; ok {
				c.check(ps.(map[string]any), val, path+"."+k)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					c.fail(path, "field %q is not in the schema", k)
				}
			case map[string]any:
				c.check(ap, val, path+"."+k)
			}
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range x {
				c.check(items, e, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// TestSchemaChecker makes sure the checker can fail.
func TestSchemaChecker(t *testing.T) {
	t.Parallel()
	c := loadSchema(t)
	bad := map[string]string{
		"missing sections":  `{"report":{}}`,
		"wrong type":        `{"report":1,"summary":{},"audit_chain":{},"credentials":[],"runs":[],"emergencies":[],"violations":[]}`,
		"unknown field":     `{"extra":1,"report":{},"summary":{},"audit_chain":{},"credentials":[],"runs":[],"emergencies":[],"violations":[]}`,
		"bad enum in items": `{"report":{},"summary":{},"audit_chain":{},"credentials":[{"status":"great"}],"runs":[],"emergencies":[],"violations":[]}`,
	}
	for name, doc := range bad {
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		if errs := c.validate(v); len(errs) == 0 {
			t.Errorf("%s: the checker accepted %s", name, doc)
		}
	}
}
