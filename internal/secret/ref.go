package secret

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
)

// Reference schemes understood by ParseRef and Resolver.
const (
	// SchemeEnv reads an environment variable: ${env:NAME}.
	SchemeEnv = "env"
	// SchemeFile reads a file: ${file:PATH}.
	SchemeFile = "file"
	// SchemeAWSSecretsManager reads an AWS Secrets Manager secret:
	// ${aws-sm:SECRET_ID} or ${aws-sm:SECRET_ID#json_key}.
	SchemeAWSSecretsManager = "aws-sm"
)

// validRefForms is quoted by every ParseRef error.
const validRefForms = "valid forms are ${env:NAME}, ${file:PATH}, ${aws-sm:SECRET_ID} and ${aws-sm:SECRET_ID#json_key}"

var (
	// ErrBadRef is returned (wrapped) when a string is not a valid secret
	// reference.
	ErrBadRef = errors.New("invalid secret reference")
	// ErrRefNotFound is returned (wrapped) when a reference is well formed
	// but what it points at does not exist: an unset environment variable,
	// a missing file, an unknown AWS secret or JSON key.
	ErrRefNotFound = errors.New("secret reference not found")
	// ErrEmptyValue is returned (wrapped) when a reference resolves to an
	// empty secret, which is always a misconfiguration.
	ErrEmptyValue = errors.New("secret reference resolves to an empty value")
)

// Ref is a parsed reference to a secret kept outside the configuration. It
// names where the secret lives, never the secret itself, so it may be
// logged.
type Ref struct {
	// Scheme is one of SchemeEnv, SchemeFile or SchemeAWSSecretsManager.
	Scheme string
	// Path is the environment variable name, the file path or the AWS
	// secret id (a name or an ARN).
	Path string
	// JSONKey, only for SchemeAWSSecretsManager, selects one key of a
	// secret whose SecretString is a JSON object.
	JSONKey string
}

// String returns the canonical ${scheme:path} or ${scheme:path#key} form.
// It contains no secret.
func (r Ref) String() string {
	if r.JSONKey != "" {
		return "${" + r.Scheme + ":" + r.Path + "#" + r.JSONKey + "}"
	}
	return "${" + r.Scheme + ":" + r.Path + "}"
}

// IsRef reports whether s looks like an attempt at a secret reference at all
// (it contains "${"), so that configuration loading can tell a malformed
// reference from a literal value. It does not validate; use ParseRef.
func IsRef(s string) bool { return strings.Contains(s, "${") }

// ParseRef parses a whole string of the form ${env:NAME}, ${file:PATH},
// ${aws-sm:SECRET_ID} or ${aws-sm:SECRET_ID#json_key}. Errors wrap ErrBadRef
// and say what would be valid; they never repeat the input, which may be a
// secret pasted where a reference belongs.
func ParseRef(s string) (Ref, error) {
	if !strings.HasPrefix(s, "${") || !strings.HasSuffix(s, "}") || len(s) < 3 {
		return Ref{}, fmt.Errorf("%w: a reference must be the whole value, starting with ${ and ending with }; %s", ErrBadRef, validRefForms)
	}
	scheme, rest, ok := strings.Cut(s[2:len(s)-1], ":")
	if !ok {
		return Ref{}, fmt.Errorf("%w: missing ':' after the scheme; %s", ErrBadRef, validRefForms)
	}
	r := Ref{Scheme: scheme, Path: rest}
	if scheme == SchemeAWSSecretsManager {
		r.Path, r.JSONKey, _ = strings.Cut(rest, "#")
		if strings.Contains(rest, "#") && r.JSONKey == "" {
			return Ref{}, fmt.Errorf("%w: empty json key after '#' in aws-sm reference; %s", ErrBadRef, validRefForms)
		}
	}
	if err := r.validate(); err != nil {
		return Ref{}, err
	}
	return r, nil
}

// validate checks a Ref built by ParseRef or by hand.
func (r Ref) validate() error {
	if r.JSONKey != "" && r.Scheme != SchemeAWSSecretsManager {
		return fmt.Errorf("%w: a #json_key is only supported for aws-sm references; %s", ErrBadRef, validRefForms)
	}
	switch r.Scheme {
	case SchemeEnv:
		if !isEnvName(r.Path) {
			return fmt.Errorf("%w: env variable name must match [A-Za-z_][A-Za-z0-9_]*; %s", ErrBadRef, validRefForms)
		}
	case SchemeFile:
		if r.Path == "" {
			return fmt.Errorf("%w: empty file path; %s", ErrBadRef, validRefForms)
		}
		if strings.ContainsFunc(r.Path, badPathRune) {
			return fmt.Errorf("%w: file path contains '}' or a control character; %s", ErrBadRef, validRefForms)
		}
	case SchemeAWSSecretsManager:
		if r.Path == "" {
			return fmt.Errorf("%w: empty aws-sm secret id; %s", ErrBadRef, validRefForms)
		}
		if strings.ContainsFunc(r.Path, func(c rune) bool { return c == '#' || unicode.IsSpace(c) || badPathRune(c) }) {
			return fmt.Errorf("%w: aws-sm secret id contains '#', '}', white space or a control character; %s", ErrBadRef, validRefForms)
		}
		if strings.ContainsFunc(r.JSONKey, badPathRune) {
			return fmt.Errorf("%w: aws-sm json key contains '}' or a control character; %s", ErrBadRef, validRefForms)
		}
	default:
		if isSchemeName(r.Scheme) {
			return fmt.Errorf("%w: unknown scheme %q; %s", ErrBadRef, r.Scheme, validRefForms)
		}
		return fmt.Errorf("%w: unknown scheme; %s", ErrBadRef, validRefForms)
	}
	return nil
}

// badPathRune reports runes never allowed in a reference's path or key: '}'
// would make "${file:a} ${file:b}" parse as one path, control characters are
// never meant.
func badPathRune(c rune) bool {
	return c == '}' || unicode.IsControl(c) || c == unicode.ReplacementChar
}

// isEnvName reports whether s matches [A-Za-z_][A-Za-z0-9_]*.
func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// isSchemeName reports whether s is short and plain enough to be quoted in
// an error as an unknown scheme without risk of echoing a secret.
func isSchemeName(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// SecretsManagerAPI is the part of the AWS Secrets Manager client that
// Resolver uses; *secretsmanager.Client implements it. GetSecretValue is a
// read and may be retried freely.
type SecretsManagerAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

var _ SecretsManagerAPI = (*secretsmanager.Client)(nil)

// Resolver turns references into secret values. Its zero value is ready to
// use: it reads the process environment and files, and builds an AWS Secrets
// Manager client from the standard AWS configuration chain (environment,
// shared config and credentials files, AWS_REGION, AWS_ENDPOINT_URL and
// AWS_ENDPOINT_URL_SECRETS_MANAGER) on first use. Set the fields before the
// first call; a Resolver is then safe for concurrent use and must not be
// copied.
type Resolver struct {
	// LookupEnv reads an environment variable; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// ReadFile reads a file; nil means os.ReadFile. One trailing "\n" or
	// "\r\n" is removed from the content.
	ReadFile func(string) ([]byte, error)
	// SecretsManager is the AWS Secrets Manager client; nil means a client
	// built lazily with config.LoadDefaultConfig.
	SecretsManager SecretsManagerAPI
	// CacheTTL is how long a fetched AWS secret is reused by this Resolver;
	// zero (the default) fetches on every call.
	CacheTTL time.Duration
	// Now is the clock used for the cache; nil means time.Now.
	Now func() time.Time

	smMu      sync.Mutex
	defaultSM SecretsManagerAPI

	cacheMu sync.Mutex
	cache   map[string]cachedSecret
}

// cachedSecret is one fetched AWS secret.
type cachedSecret struct {
	str     Value // SecretString, when set
	bin     Value // SecretBinary, when SecretString is not set
	isStr   bool
	expires time.Time
}

// ResolveString parses s, which must be a reference, and resolves it.
func (r *Resolver) ResolveString(ctx context.Context, s string) (Value, error) {
	ref, err := ParseRef(s)
	if err != nil {
		return Value{}, err
	}
	return r.Resolve(ctx, ref)
}

// Resolve returns the secret ref points at. Errors name the reference,
// never the value: a missing variable, file, AWS secret or JSON key wraps
// ErrRefNotFound, an empty result wraps ErrEmptyValue, and other AWS
// failures carry the AWS error code.
func (r *Resolver) Resolve(ctx context.Context, ref Ref) (Value, error) {
	if err := ref.validate(); err != nil {
		return Value{}, err
	}
	var (
		v   Value
		err error
	)
	switch ref.Scheme {
	case SchemeEnv:
		v, err = r.resolveEnv(ref)
	case SchemeFile:
		v, err = r.resolveFile(ref)
	case SchemeAWSSecretsManager:
		v, err = r.resolveAWS(ctx, ref)
	}
	if err != nil {
		return Value{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	if v.IsZero() {
		return Value{}, fmt.Errorf("resolve %s: %w", ref, ErrEmptyValue)
	}
	return v, nil
}

func (r *Resolver) resolveEnv(ref Ref) (Value, error) {
	lookup := r.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	s, ok := lookup(ref.Path)
	if !ok {
		return Value{}, fmt.Errorf("%w: environment variable %s is not set", ErrRefNotFound, ref.Path)
	}
	return NewString(s), nil
}

func (r *Resolver) resolveFile(ref Ref) (Value, error) {
	read := r.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	b, err := read(ref.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return Value{}, fmt.Errorf("%w: %w", ErrRefNotFound, err)
	}
	if err != nil {
		// *fs.PathError names the operation and path, not the content.
		return Value{}, err
	}
	if bytes.HasSuffix(b, []byte("\r\n")) {
		b = b[:len(b)-2]
	} else if bytes.HasSuffix(b, []byte("\n")) {
		b = b[:len(b)-1]
	}
	v := New(b)
	clear(b)
	return v, nil
}

func (r *Resolver) resolveAWS(ctx context.Context, ref Ref) (Value, error) {
	sec, err := r.fetchAWS(ctx, ref.Path)
	if err != nil {
		return Value{}, err
	}
	if ref.JSONKey == "" {
		if sec.isStr {
			return sec.str, nil
		}
		return sec.bin, nil
	}
	if !sec.isStr {
		return Value{}, fmt.Errorf("aws secret %q holds SecretBinary, but a #json_key needs a JSON object in SecretString", ref.Path)
	}
	return jsonKey(sec.str, ref)
}

// jsonKey extracts ref.JSONKey from the JSON object in v. Errors never
// include JSON decoder messages: those quote bytes of the input.
func jsonKey(v Value, ref Ref) (Value, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v.bytes(), &obj); err != nil || obj == nil {
		return Value{}, fmt.Errorf("aws secret %q: SecretString is not a JSON object, so json key %q cannot be read", ref.Path, ref.JSONKey)
	}
	raw, ok := obj[ref.JSONKey]
	if !ok {
		return Value{}, fmt.Errorf("%w: aws secret %q has no json key %q", ErrRefNotFound, ref.Path, ref.JSONKey)
	}
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) > 0 && raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Value{}, fmt.Errorf("aws secret %q: json key %q holds an invalid JSON string", ref.Path, ref.JSONKey)
		}
		return NewString(s), nil
	case len(raw) > 0 && (raw[0] == '-' || ('0' <= raw[0] && raw[0] <= '9') || raw[0] == 't' || raw[0] == 'f'):
		// Numbers and booleans: their JSON text.
		return New(raw), nil
	default:
		return Value{}, fmt.Errorf("aws secret %q: json key %q holds null, an object or an array; want a string, number or boolean", ref.Path, ref.JSONKey)
	}
}

// fetchAWS returns the secret id's current value, from the cache when
// CacheTTL allows.
func (r *Resolver) fetchAWS(ctx context.Context, id string) (cachedSecret, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if r.CacheTTL > 0 {
		r.cacheMu.Lock()
		c, ok := r.cache[id]
		r.cacheMu.Unlock()
		if ok && now().Before(c.expires) {
			return c, nil
		}
	}
	sm, err := r.secretsManager(ctx)
	if err != nil {
		return cachedSecret{}, err
	}
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return cachedSecret{}, awsError(id, err)
	}
	var c cachedSecret
	switch {
	case out.SecretString != nil:
		c.str, c.isStr = NewString(*out.SecretString), true
	case out.SecretBinary != nil:
		c.bin = New(out.SecretBinary)
	default:
		return cachedSecret{}, fmt.Errorf("aws secret %q has neither SecretString nor SecretBinary", id)
	}
	if r.CacheTTL > 0 {
		c.expires = now().Add(r.CacheTTL)
		r.cacheMu.Lock()
		if r.cache == nil {
			r.cache = make(map[string]cachedSecret)
		}
		r.cache[id] = c
		r.cacheMu.Unlock()
	}
	return c, nil
}

// awsError classifies a GetSecretValue error. AWS error messages and the
// SDK's operation errors describe the request, never the secret.
func awsError(id string, err error) error {
	if _, ok := errors.AsType[*types.ResourceNotFoundException](err); ok {
		return fmt.Errorf("%w: aws secret %q does not exist (ResourceNotFoundException): %w", ErrRefNotFound, id, err)
	}
	if apiErr, ok := errors.AsType[smithy.APIError](err); ok {
		return fmt.Errorf("get aws secret %q failed with %s: %w", id, apiErr.ErrorCode(), err)
	}
	return fmt.Errorf("get aws secret %q: %w", id, err)
}

// secretsManager returns the configured client or builds the default one.
// A failed build is retried on the next call.
func (r *Resolver) secretsManager(ctx context.Context) (SecretsManagerAPI, error) {
	if r.SecretsManager != nil {
		return r.SecretsManager, nil
	}
	r.smMu.Lock()
	defer r.smMu.Unlock()
	if r.defaultSM == nil {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("load aws configuration for secrets manager: %w", err)
		}
		r.defaultSM = secretsmanager.NewFromConfig(cfg)
	}
	return r.defaultSM, nil
}
