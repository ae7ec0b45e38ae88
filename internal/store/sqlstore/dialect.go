package sqlstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rotatorhq/rotator/internal/store"
)

// dialect writes the SQL fragments and argument encodings that differ
// between Postgres and SQLite. Everything else is shared.
type dialect store.Dialect

func (d dialect) pg() bool { return store.Dialect(d) == store.DialectPostgres }

// time encodes a time argument: NULL for the zero time, otherwise UTC at
// microsecond precision, as timestamptz (Postgres) or unix microseconds
// (SQLite).
func (d dialect) time(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	if d.pg() {
		return t.UTC().Truncate(time.Microsecond)
	}
	return t.UnixMicro()
}

// forUpdate locks the rows of the given table alias read by a SELECT. SQLite
// transactions are serial (BEGIN IMMEDIATE) so they need no row locks.
func (d dialect) forUpdate(alias string) string {
	if d.pg() {
		return " FOR UPDATE OF " + alias
	}
	return ""
}

// inList returns a predicate "col is one of values", with values bound as
// one argument (a text[] on Postgres, a JSON array on SQLite), so the
// statement text does not depend on the number of values.
func (d dialect) inList(q *query, col string, values []string) (string, error) {
	if d.pg() {
		return col + " = ANY(" + q.arg(values) + ")", nil
	}
	list, err := json.Marshal(values)
	if err != nil {
		return "", err
	}
	return col + " IN (SELECT value FROM json_each(" + q.arg(string(list)) + "))", nil
}

// labelsMatch returns a predicate "the labels object in col contains every
// pair of want".
func (d dialect) labelsMatch(q *query, col string, want map[string]string) (string, error) {
	b, err := json.Marshal(want)
	if err != nil {
		return "", err
	}
	if d.pg() {
		return col + " @> CAST(" + q.arg(string(b)) + " AS jsonb)", nil
	}
	return "NOT EXISTS (SELECT 1 FROM json_each(" + q.arg(string(b)) + ") AS w" +
		" WHERE NOT EXISTS (SELECT 1 FROM json_each(" + col + ") AS l" +
		" WHERE l.key = w.key AND l.type = 'text' AND l.value = w.value))", nil
}

// targetsInclude returns a predicate "the target bindings in col (a JSON
// array of {"target": name, "key": ...}) include target name".
func (d dialect) targetsInclude(q *query, col, name string) (string, error) {
	if d.pg() {
		b, err := json.Marshal([]store.TargetBinding{{Target: name}})
		if err != nil {
			return "", err
		}
		return col + " @> CAST(" + q.arg(string(b)) + " AS jsonb)", nil
	}
	return "EXISTS (SELECT 1 FROM json_each(" + col + ") AS b" +
		" WHERE json_extract(b.value, '$.target') = " + q.arg(name) + ")", nil
}

// sqlType names the column type of a bound value in a VALUES list, where
// Postgres cannot infer it.
type sqlType int

const (
	typeInt sqlType = iota
	typeText
	typeTime
	typeJSON
)

// cast types an argument placeholder where Postgres cannot infer it (VALUES
// lists). SQLite values carry their own type.
func (d dialect) cast(placeholder string, t sqlType) string {
	if !d.pg() {
		return placeholder
	}
	switch t {
	case typeInt:
		return "CAST(" + placeholder + " AS bigint)"
	case typeTime:
		return "CAST(" + placeholder + " AS timestamptz)"
	case typeText:
		return "CAST(" + placeholder + " AS text)"
	case typeJSON:
		return "CAST(" + placeholder + " AS jsonb)"
	}
	panic(fmt.Sprintf("sqlstore: unknown sql type %d", t))
}

// query builds a statement and its arguments.
type query struct {
	b    strings.Builder
	args []any
}

// arg binds v and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

func (q *query) sql(parts ...string) {
	for _, p := range parts {
		q.b.WriteString(p)
	}
}

func (q *query) String() string { return q.b.String() }

// limit is a LIMIT clause with n written in the statement, not bound: with
// a bound LIMIT, Postgres cannot tell that a prepared statement returns a
// page, so its generic plan looks costly and it plans the statement anew
// at every execution (a custom plan; about a fifth of a list page's server
// time on the 2-vCPU go-svc machine). With the number written, pgx's cached
// statement runs on its generic plan from the sixth execution on. n is an
// int, so nothing is spliced into the SQL but digits.
func sqlLimit(n int) string { return " LIMIT " + strconv.Itoa(n) }

// where joins predicates with AND.
func where(preds []string) string {
	if len(preds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(preds, " AND ")
}

// nullString encodes an optional text value: NULL when empty.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullBytes encodes an optional binary value: NULL when empty.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// seconds encodes a duration as whole seconds.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// jsonText encodes v as JSON text; empty maps and slices encode as empty
// (never null) so containment queries work on them.
func jsonText(v any, empty string) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	if string(b) == "null" {
		return empty, nil
	}
	return string(b), nil
}

// jsonRaw encodes an optional JSON document: NULL when empty.
func jsonRaw(b json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("invalid JSON")
	}
	return string(b), nil
}

// timeCol scans a time column of either dialect (timestamptz or unix
// microseconds); NULL is the zero time. Times are returned in UTC.
type timeCol struct{ dst *time.Time }

func (c *timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.dst = time.Time{}
	case time.Time:
		*c.dst = v.UTC()
	case int64:
		*c.dst = time.UnixMicro(v).UTC()
	default:
		return fmt.Errorf("scan time: unsupported %T", src)
	}
	return nil
}

// ScanTimestamptz lets pgx hand over the decoded time without the
// database/sql detour (an interface conversion and an allocation a
// column, which listing credentials paid 700 times a page).
func (c *timeCol) ScanTimestamptz(v pgtype.Timestamptz) error {
	if !v.Valid {
		*c.dst = time.Time{}
		return nil
	}
	*c.dst = v.Time.UTC()
	return nil
}

// textCol scans a nullable text column; NULL is "".
type textCol struct{ dst *string }

func (c *textCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.dst = ""
	case string:
		*c.dst = v
	case []byte:
		*c.dst = string(v)
	default:
		return fmt.Errorf("scan text: unsupported %T", src)
	}
	return nil
}

// intCol scans a nullable integer column; NULL is 0.
type intCol struct{ dst *int64 }

func (c *intCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.dst = 0
	case int64:
		*c.dst = v
	case int32:
		*c.dst = int64(v)
	case float64: // SQLite REAL from an expression
		if v != math.Trunc(v) {
			return fmt.Errorf("scan integer: %v is not whole", v)
		}
		*c.dst = int64(v)
	default:
		return fmt.Errorf("scan integer: unsupported %T", src)
	}
	return nil
}

// ScanText is textCol's pgx path, as ScanTimestamptz is timeCol's.
func (c *textCol) ScanText(v pgtype.Text) error {
	*c.dst = v.String // "" when NULL
	return nil
}

// jsonCol scans a nullable JSON column (jsonb or TEXT) as raw bytes; NULL
// is nil.
type jsonCol struct{ dst *[]byte }

func (c *jsonCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.dst = nil
	case string:
		*c.dst = []byte(v)
	case []byte:
		*c.dst = bytes.Clone(v)
	default:
		return fmt.Errorf("scan json: unsupported %T", src)
	}
	return nil
}

// ScanBytes is jsonCol's pgx path: v is the driver's buffer (the jsonb
// version byte already removed), nil for NULL.
func (c *jsonCol) ScanBytes(v []byte) error {
	if v == nil {
		*c.dst = nil
		return nil
	}
	*c.dst = bytes.Clone(v)
	return nil
}

// decodeStrings decodes a JSON array of strings; empty is nil.
func decodeStrings(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	out, ok := scanFlatStrings(b)
	if !ok {
		out = nil
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// decodeStringMap decodes a JSON object of strings; empty is nil.
func decodeStringMap(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	out, ok := scanFlatStringMap(b)
	if !ok {
		out = nil
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// decodeSettings decodes a settings object as YAML would have: nested
// objects are map[string]any, lists []any, whole numbers int and other
// numbers float64. Empty is nil.
func decodeSettings(b []byte) (map[string]any, error) {
	if len(b) == 0 || string(b) == "{}" || string(b) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	for k, v := range out {
		out[k] = normalizeNumbers(v)
	}
	return out, nil
}

func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, strconv.IntSize); err == nil {
			return int(i)
		}
		f, err := x.Float64()
		if err != nil {
			return string(x)
		}
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
		return x
	}
	return v
}
