package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// refCanary is a secret value that must never appear in an error.
const refCanary = "canary-Qm3Zx8Wr5Tk1Lp7Vn2Bh9Fd4"

func TestParseRef(t *testing.T) {
	t.Parallel()

	valid := map[string]Ref{
		"${env:HOME}":                      {Scheme: "env", Path: "HOME"},
		"${env:_x1}":                       {Scheme: "env", Path: "_x1"},
		"${env:A}":                         {Scheme: "env", Path: "A"},
		"${file:/run/secrets/db password}": {Scheme: "file", Path: "/run/secrets/db password"},
		"${file:relative.txt}":             {Scheme: "file", Path: "relative.txt"},
		"${file:C:\\keys\\a#b}":            {Scheme: "file", Path: "C:\\keys\\a#b"},
		"${aws-sm:prod/mcp/github}":        {Scheme: "aws-sm", Path: "prod/mcp/github"},
		"${aws-sm:prod/db#password}":       {Scheme: "aws-sm", Path: "prod/db", JSONKey: "password"},
		"${aws-sm:arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf}": {
			Scheme: "aws-sm", Path: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
		},
		"${aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-1a2b3c#client secret}": {
			Scheme: "aws-sm", Path: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-1a2b3c", JSONKey: "client secret",
		},
		"${aws-sm:db#a#b}": {Scheme: "aws-sm", Path: "db", JSONKey: "a#b"},
	}
	for in, want := range valid {
		t.Run("valid "+in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRef(in)
			if err != nil {
				t.Fatalf("ParseRef(%q): %v", in, err)
			}
			if got != want {
				t.Fatalf("ParseRef(%q) = %#v, want %#v", in, got, want)
			}
			if got.String() != in {
				t.Fatalf("String() = %q, want the input %q", got.String(), in)
			}
			if !IsRef(in) {
				t.Fatalf("IsRef(%q) = false", in)
			}
		})
	}

	invalid := map[string]string{ // input -> a fragment the error must contain
		"":                      "must be the whole value",
		"env:HOME":              "must be the whole value",
		"${env:HOME":            "must be the whole value",
		" ${env:HOME}":          "must be the whole value",
		"${env:HOME} ":          "must be the whole value",
		"prefix ${env:HOME}":    "must be the whole value",
		"${}":                   "missing ':'",
		"${HOME}":               "missing ':'",
		"${env:}":               "[A-Za-z_][A-Za-z0-9_]*",
		"${env:1ABC}":           "[A-Za-z_][A-Za-z0-9_]*",
		"${env:MY-VAR}":         "[A-Za-z_][A-Za-z0-9_]*",
		"${env:A#b}":            "[A-Za-z_][A-Za-z0-9_]*",
		"${env:A}${env:B}":      "[A-Za-z_][A-Za-z0-9_]*",
		"${file:}":              "empty file path",
		"${file:/a} ${file:/b}": "'}'",
		"${file:/a\nb}":         "control character",
		"${aws-sm:}":            "empty aws-sm secret id",
		"${aws-sm:#key}":        "empty aws-sm secret id",
		"${aws-sm:db#}":         "empty json key",
		"${aws-sm:my secret}":   "white space",
		"${vault:kv/db}":        `unknown scheme "vault"`,
		"${ENV:HOME}":           "unknown scheme",
		"${sk_live_abcdef:x}":   "unknown scheme;",
		"${:x}":                 "unknown scheme",
	}
	for in, fragment := range invalid {
		t.Run(fmt.Sprintf("invalid %q", in), func(t *testing.T) {
			t.Parallel()
			_, err := ParseRef(in)
			if !errors.Is(err, ErrBadRef) {
				t.Fatalf("ParseRef(%q) error = %v, want ErrBadRef", in, err)
			}
			if !strings.Contains(err.Error(), fragment) {
				t.Errorf("ParseRef(%q) error %q does not contain %q", in, err, fragment)
			}
			if !strings.Contains(err.Error(), "${aws-sm:SECRET_ID#json_key}") {
				t.Errorf("ParseRef(%q) error %q does not list the valid forms", in, err)
			}
		})
	}
}

func TestParseRefErrorsDoNotEchoInput(t *testing.T) {
	t.Parallel()

	// A secret pasted where a reference belongs must not reach the error.
	for _, in := range []string{
		"${env:" + refCanary + "}",
		"${" + refCanary + "}",
		"${" + refCanary + ":x}",
		"${file:" + refCanary + "\x00}",
		"${aws-sm:" + refCanary + " }",
		"${aws-sm:db#" + refCanary + "\n}",
		refCanary,
	} {
		_, err := ParseRef(in)
		if err == nil {
			t.Fatalf("ParseRef(%q) succeeded", in)
		}
		if strings.Contains(err.Error(), refCanary) {
			t.Errorf("ParseRef error repeats its input: %v", err)
		}
	}
}

func TestIsRef(t *testing.T) {
	t.Parallel()

	for in, want := range map[string]bool{
		"${env:X}":         true,
		"${vault:x}":       true,
		"${env:X":          true,
		"Bearer ${env:X}":  true,
		"sk-live-abcdef":   false,
		"$HOME":            false,
		"{env:X}":          false,
		"":                 false,
		"price: $5 {each}": false,
	} {
		if got := IsRef(in); got != want {
			t.Errorf("IsRef(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestResolverEnv(t *testing.T) {
	t.Parallel()

	env := map[string]string{"TOKEN": refCanary, "EMPTY": ""}
	r := &Resolver{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	ctx := t.Context()

	t.Run("set", func(t *testing.T) {
		t.Parallel()
		v, err := r.ResolveString(ctx, "${env:TOKEN}")
		if err != nil {
			t.Fatal(err)
		}
		if v.RevealString() != refCanary {
			t.Fatalf("got %d bytes, want the TOKEN value", v.Len())
		}
	})
	t.Run("unset", func(t *testing.T) {
		t.Parallel()
		_, err := r.ResolveString(ctx, "${env:MISSING}")
		if !errors.Is(err, ErrRefNotFound) {
			t.Fatalf("error = %v, want ErrRefNotFound", err)
		}
		if !strings.Contains(err.Error(), "${env:MISSING}") {
			t.Fatalf("error %q does not name the reference", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		_, err := r.ResolveString(ctx, "${env:EMPTY}")
		if !errors.Is(err, ErrEmptyValue) {
			t.Fatalf("error = %v, want ErrEmptyValue", err)
		}
	})
	t.Run("not a reference", func(t *testing.T) {
		t.Parallel()
		_, err := r.ResolveString(ctx, refCanary)
		if !errors.Is(err, ErrBadRef) || strings.Contains(err.Error(), refCanary) {
			t.Fatalf("error = %v, want ErrBadRef without the input", err)
		}
	})
	t.Run("hand-built invalid ref", func(t *testing.T) {
		t.Parallel()
		_, err := r.Resolve(ctx, Ref{Scheme: "env", Path: "A", JSONKey: "k"})
		if !errors.Is(err, ErrBadRef) {
			t.Fatalf("error = %v, want ErrBadRef", err)
		}
	})
}

func TestResolverProcessEnv(t *testing.T) {
	t.Setenv("ROTATOR_TEST_REF_ENV", refCanary)
	v, err := new(Resolver).ResolveString(t.Context(), "${env:ROTATOR_TEST_REF_ENV}")
	if err != nil {
		t.Fatal(err)
	}
	if v.RevealString() != refCanary {
		t.Fatal("the default LookupEnv did not read the process environment")
	}
}

func TestResolverFile(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	r := new(Resolver) // default os.ReadFile
	tests := map[string]struct {
		content string
		want    string
	}{
		"plain":              {content: refCanary, want: refCanary},
		"trailing newline":   {content: refCanary + "\n", want: refCanary},
		"trailing crlf":      {content: refCanary + "\r\n", want: refCanary},
		"only one newline":   {content: refCanary + "\n\n", want: refCanary + "\n"},
		"inner newline kept": {content: "line1\nline2\n", want: "line1\nline2"},
		"spaces kept":        {content: " " + refCanary + " \n", want: " " + refCanary + " "},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := write(strings.ReplaceAll(name, " ", "_"), tt.content)
			v, err := r.ResolveString(t.Context(), "${file:"+p+"}")
			if err != nil {
				t.Fatal(err)
			}
			if got := v.RevealString(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		p := filepath.Join(dir, "does-not-exist")
		_, err := r.ResolveString(t.Context(), "${file:"+p+"}")
		if !errors.Is(err, ErrRefNotFound) || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("error = %v, want ErrRefNotFound and os.ErrNotExist", err)
		}
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not name the path", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		p := write("empty", "\n")
		_, err := r.ResolveString(t.Context(), "${file:"+p+"}")
		if !errors.Is(err, ErrEmptyValue) {
			t.Fatalf("error = %v, want ErrEmptyValue", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		_, err := r.ResolveString(t.Context(), "${file:"+dir+"}")
		if err == nil || errors.Is(err, ErrRefNotFound) {
			t.Fatalf("error = %v, want a read error", err)
		}
	})
	t.Run("injected ReadFile", func(t *testing.T) {
		t.Parallel()
		r := &Resolver{ReadFile: func(p string) ([]byte, error) {
			if p != "/virtual" {
				return nil, fmt.Errorf("unexpected path %q", p)
			}
			return []byte(refCanary + "\n"), nil
		}}
		v, err := r.ResolveString(t.Context(), "${file:/virtual}")
		if err != nil || v.RevealString() != refCanary {
			t.Fatalf("got (%d bytes, %v), want the injected content", v.Len(), err)
		}
	})
}

// fakeSecretsManager is an AWS Secrets Manager endpoint speaking the AWS
// JSON 1.1 protocol, as far as GetSecretValue goes.
type fakeSecretsManager struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	secrets map[string]fakeSecret // by SecretId
	calls   atomic.Int64
}

// fakeSecret is a secret or, when errType is set, the error the fake returns
// for its id.
type fakeSecret struct {
	str     *string
	bin     []byte
	errType string
	errMsg  string
}

func newFakeSecretsManager(t *testing.T) *fakeSecretsManager {
	t.Helper()
	f := &fakeSecretsManager{t: t, secrets: make(map[string]fakeSecret)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSecretsManager) put(id string, s fakeSecret) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[id] = s
}

func (f *fakeSecretsManager) serve(w http.ResponseWriter, req *http.Request) {
	f.calls.Add(1)
	fail := func(status int, typ, msg string) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-Errortype", typ)
		w.Header().Set("X-Amzn-Requestid", "00000000-0000-0000-0000-000000000000")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "Message": msg})
	}
	if req.Method != http.MethodPost || req.URL.Path != "/" {
		fail(http.StatusBadRequest, "UnknownOperationException", "bad method or path")
		f.t.Errorf("fake secrets manager: got %s %s, want POST /", req.Method, req.URL.Path)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		fail(http.StatusBadRequest, "SerializationException", "bad content type")
		f.t.Errorf("fake secrets manager: Content-Type = %q", ct)
		return
	}
	if target := req.Header.Get("X-Amz-Target"); target != "secretsmanager.GetSecretValue" {
		fail(http.StatusBadRequest, "UnknownOperationException", "unknown operation")
		f.t.Errorf("fake secrets manager: X-Amz-Target = %q", target)
		return
	}
	if auth := req.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDFAKE/") ||
		!strings.Contains(auth, "/us-east-1/secretsmanager/aws4_request") {
		fail(http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
		f.t.Errorf("fake secrets manager: Authorization = %q, want a SigV4 signature for us-east-1/secretsmanager", auth)
		return
	}
	var in struct {
		SecretId     string
		VersionId    *string
		VersionStage *string
	}
	body, _ := io.ReadAll(req.Body)
	if err := json.Unmarshal(body, &in); err != nil || in.SecretId == "" {
		fail(http.StatusBadRequest, "ValidationException", "1 validation error detected: SecretId")
		f.t.Errorf("fake secrets manager: body %s", body)
		return
	}
	f.mu.Lock()
	s, ok := f.secrets[in.SecretId]
	f.mu.Unlock()
	switch {
	case !ok:
		fail(http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
		return
	case s.errType != "":
		fail(http.StatusBadRequest, s.errType, s.errMsg)
		return
	}
	name := in.SecretId
	if strings.HasPrefix(name, "arn:") {
		name = name[strings.LastIndex(name, ":")+1:]
	}
	out := map[string]any{
		"ARN":           "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + name + "-AbCdEf",
		"Name":          name,
		"VersionId":     "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE",
		"VersionStages": []string{"AWSCURRENT"},
		"CreatedDate":   1.7e9,
	}
	if s.str != nil {
		out["SecretString"] = *s.str
	}
	if s.bin != nil {
		out["SecretBinary"] = s.bin // encoding/json writes []byte as base64, as AWS does
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", "00000000-0000-0000-0000-000000000001")
	_ = json.NewEncoder(w).Encode(out)
}

// client returns a real Secrets Manager client pointed at the fake.
func (f *fakeSecretsManager) client() *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(f.srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFAKE", "fake-secret-access-key", ""),
		HTTPClient:   f.srv.Client(),
	})
}

func TestResolverAWSSecretsManager(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		fake *fakeSecretsManager
		now  time.Time
	}
	setup := func(t *testing.T) (*Resolver, *testBundle) {
		t.Helper()
		b := &testBundle{fake: newFakeSecretsManager(t), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		r := &Resolver{SecretsManager: b.fake.client(), Now: func() time.Time { return b.now }}
		return r, b
	}
	str := func(s string) *string { return &s }

	t.Run("secret string", func(t *testing.T) {
		t.Parallel()
		r, b := setup(t)
		b.fake.put("prod/mcp/github", fakeSecret{str: str(refCanary)})
		v, err := r.ResolveString(t.Context(), "${aws-sm:prod/mcp/github}")
		if err != nil {
			t.Fatal(err)
		}
		if v.RevealString() != refCanary {
			t.Fatalf("got %d bytes, want the SecretString", v.Len())
		}
	})
	t.Run("arn", func(t *testing.T) {
		t.Parallel()
		r, b := setup(t)
		arn := "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
		b.fake.put(arn, fakeSecret{str: str(refCanary)})
		v, err := r.ResolveString(t.Context(), "${aws-sm:"+arn+"}")
		if err != nil || v.RevealString() != refCanary {
			t.Fatalf("got (%d bytes, %v), want the SecretString", v.Len(), err)
		}
	})
	t.Run("secret binary", func(t *testing.T) {
		t.Parallel()
		r, b := setup(t)
		bin := []byte{0, 1, 2, 0xff, 'x', 'y', 'z', '\n'}
		b.fake.put("bin", fakeSecret{bin: bin})
		v, err := r.ResolveString(t.Context(), "${aws-sm:bin}")
		if err != nil {
			t.Fatal(err)
		}
		if string(v.Reveal()) != string(bin) {
			t.Fatalf("got %v, want %v", v.Reveal(), bin)
		}
	})
	t.Run("json keys", func(t *testing.T) {
		t.Parallel()
		r, b := setup(t)
		b.fake.put("prod/db", fakeSecret{str: str(`{"username":"app","password":"` + refCanary + `","port":5432,"ratio":-1.5e3,"tls":true,"off":false,"esc":"a\"b\u00e9\n"}`)})
		for key, want := range map[string]string{
			"password": refCanary, "username": "app", "port": "5432", "ratio": "-1.5e3",
			"tls": "true", "off": "false", "esc": "a\"b\u00e9\n",
		} {
			v, err := r.ResolveString(t.Context(), "${aws-sm:prod/db#"+key+"}")
			if err != nil {
				t.Fatalf("key %s: %v", key, err)
			}
			if got := v.RevealString(); got != want {
				t.Errorf("key %s = %q, want %q", key, got, want)
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		r, b := setup(t)
		b.fake.put("json", fakeSecret{str: str(`{"password":"` + refCanary + `","nothing":null,"obj":{"x":"` + refCanary + `"},"list":["` + refCanary + `"],"empty":""}`)})
		b.fake.put("notjson", fakeSecret{str: str(refCanary + ` {"password":"x"}`)})
		b.fake.put("array", fakeSecret{str: str(`["` + refCanary + `"]`)})
		b.fake.put("bin", fakeSecret{bin: []byte(refCanary)})
		b.fake.put("denied", fakeSecret{errType: "AccessDeniedException", errMsg: "User: arn:aws:iam::123456789012:user/rotator is not authorized to perform: secretsmanager:GetSecretValue"})
		b.fake.put("kms", fakeSecret{errType: "DecryptionFailure", errMsg: "Secrets Manager can't decrypt the protected secret text using the provided KMS key."})
		b.fake.put("namespaced", fakeSecret{errType: "com.amazonaws.secretsmanager#ResourceNotFoundException", errMsg: "Secrets Manager can't find the specified secret."})

		tests := map[string]struct {
			ref      string
			is       error
			contains []string
		}{
			"missing secret":    {ref: "${aws-sm:nope}", is: ErrRefNotFound, contains: []string{`"nope"`, "ResourceNotFoundException"}},
			"namespaced type":   {ref: "${aws-sm:namespaced}", is: ErrRefNotFound, contains: []string{`"namespaced"`}},
			"missing json key":  {ref: "${aws-sm:json#user}", is: ErrRefNotFound, contains: []string{`"json"`, `"user"`}},
			"null value":        {ref: "${aws-sm:json#nothing}", contains: []string{`"nothing"`, "null"}},
			"object value":      {ref: "${aws-sm:json#obj}", contains: []string{`"obj"`}},
			"array value":       {ref: "${aws-sm:json#list}", contains: []string{`"list"`}},
			"empty value":       {ref: "${aws-sm:json#empty}", is: ErrEmptyValue, contains: []string{"${aws-sm:json#empty}"}},
			"not json":          {ref: "${aws-sm:notjson#password}", contains: []string{`"notjson"`, "not a JSON object"}},
			"json array":        {ref: "${aws-sm:array#password}", contains: []string{"not a JSON object"}},
			"binary with key":   {ref: "${aws-sm:bin#password}", contains: []string{"SecretBinary"}},
			"access denied":     {ref: "${aws-sm:denied}", contains: []string{`"denied"`, "AccessDeniedException"}},
			"decryption failed": {ref: "${aws-sm:kms#password}", contains: []string{`"kms"`, "DecryptionFailure"}},
		}
		for name, tt := range tests {
			t.Run(name, func(t *testing.T) {
				v, err := r.ResolveString(t.Context(), tt.ref)
				if err == nil {
					t.Fatalf("resolved %d bytes, want an error", v.Len())
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("error = %v, want %v", err, tt.is)
				}
				if tt.is == nil && errors.Is(err, ErrRefNotFound) {
					t.Errorf("error = %v, must not be ErrRefNotFound", err)
				}
				for _, c := range tt.contains {
					if !strings.Contains(err.Error(), c) {
						t.Errorf("error %q does not contain %q", err, c)
					}
				}
				if !strings.Contains(err.Error(), tt.ref) {
					t.Errorf("error %q does not name the reference", err)
				}
				if strings.Contains(err.Error(), refCanary) || strings.Contains(fmt.Sprintf("%+v", err), refCanary) {
					t.Errorf("error leaks the secret: %v", err)
				}
			})
		}
	})
	t.Run("no cache by default", func(t *testing.T) {
		t.Parallel()
		r, b := setup(t)
		b.fake.put("s", fakeSecret{str: str("first-value-0123")})
		for range 3 {
			if _, err := r.ResolveString(t.Context(), "${aws-sm:s}"); err != nil {
				t.Fatal(err)
			}
		}
		if n := b.fake.calls.Load(); n != 3 {
			t.Fatalf("%d GetSecretValue calls, want 3", n)
		}
	})
	t.Run("cache", func(t *testing.T) {
		t.Parallel()
		r, b := setup(t)
		r.CacheTTL = time.Minute
		b.fake.put("s", fakeSecret{str: str(`{"a":"first-value-0123","b":"other-value-4567"}`)})
		resolve := func(ref string) string {
			t.Helper()
			v, err := r.ResolveString(t.Context(), ref)
			if err != nil {
				t.Fatal(err)
			}
			return v.RevealString()
		}
		if got := resolve("${aws-sm:s#a}"); got != "first-value-0123" {
			t.Fatalf("got %q", got)
		}
		b.fake.put("s", fakeSecret{str: str(`{"a":"second-value-89","b":"other-value-4567"}`)})
		b.now = b.now.Add(59 * time.Second)
		if got := resolve("${aws-sm:s#a}"); got != "first-value-0123" {
			t.Fatalf("within the TTL got %q, want the cached value", got)
		}
		if got := resolve("${aws-sm:s#b}"); got != "other-value-4567" {
			t.Fatalf("other key of the cached secret: got %q", got)
		}
		if n := b.fake.calls.Load(); n != 1 {
			t.Fatalf("%d GetSecretValue calls within the TTL, want 1", n)
		}
		b.now = b.now.Add(time.Second)
		if got := resolve("${aws-sm:s#a}"); got != "second-value-89" {
			t.Fatalf("after the TTL got %q, want the new value", got)
		}
		if n := b.fake.calls.Load(); n != 2 {
			t.Fatalf("%d GetSecretValue calls, want 2", n)
		}
	})
	t.Run("errors are not cached", func(t *testing.T) {
		t.Parallel()
		r, b := setup(t)
		r.CacheTTL = time.Hour
		if _, err := r.ResolveString(t.Context(), "${aws-sm:later}"); !errors.Is(err, ErrRefNotFound) {
			t.Fatalf("error = %v, want ErrRefNotFound", err)
		}
		b.fake.put("later", fakeSecret{str: str("created-later-0123")})
		if v, err := r.ResolveString(t.Context(), "${aws-sm:later}"); err != nil || v.RevealString() != "created-later-0123" {
			t.Fatalf("got (%d bytes, %v) after the secret was created", v.Len(), err)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		r, b := setup(t)
		r.CacheTTL = time.Minute
		b.fake.put("s", fakeSecret{str: str(refCanary)})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if v, err := r.ResolveString(t.Context(), "${aws-sm:s}"); err != nil || v.RevealString() != refCanary {
					t.Errorf("got (%d bytes, %v)", v.Len(), err)
				}
			})
		}
		wg.Wait()
	})
}

// TestResolverAWSDefaultClient checks that the lazily built client follows
// the standard AWS configuration chain, including the endpoint override.
func TestResolverAWSDefaultClient(t *testing.T) {
	fake := newFakeSecretsManager(t)
	s := refCanary
	fake.put("prod/token", fakeSecret{str: &s})
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": fake.srv.URL,
		"AWS_ENDPOINT_URL":                 "http://127.0.0.1:1", // the service-specific variable wins
		"AWS_REGION":                       "us-east-1",
		"AWS_ACCESS_KEY_ID":                "AKIDFAKE",
		"AWS_SECRET_ACCESS_KEY":            "fake-secret-access-key",
		"AWS_SESSION_TOKEN":                "",
		"AWS_PROFILE":                      "",
		"AWS_CONFIG_FILE":                  filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":      filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":        "true",
		"AWS_MAX_ATTEMPTS":                 "1",
	} {
		t.Setenv(k, v)
	}
	r := new(Resolver)
	v, err := r.ResolveString(t.Context(), "${aws-sm:prod/token}")
	if err != nil {
		t.Fatal(err)
	}
	if v.RevealString() != refCanary {
		t.Fatal("default client returned the wrong value")
	}
	_, err = r.ResolveString(t.Context(), "${aws-sm:missing}")
	if !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("error = %v, want ErrRefNotFound", err)
	}
	if n := fake.calls.Load(); n != 2 {
		t.Fatalf("fake saw %d calls, want 2", n)
	}
	// The SDK client's keep-alive connections end when the fake's Cleanup
	// closes the server; goleak in TestMain checks that they do.
}

func TestResolverContextCanceled(t *testing.T) {
	t.Parallel()

	fake := newFakeSecretsManager(t)
	r := &Resolver{SecretsManager: fake.client()}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := r.ResolveString(ctx, "${aws-sm:any}")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}
