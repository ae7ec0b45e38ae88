package testaws

// This file is a fake of AWS Secrets Manager at the protocol level, for the
// tests of the aws-secretsmanager target and the end-to-end tests, which
// point the real AWS SDK client at it.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// SecretsManager is AWS Secrets Manager at the protocol level: it speaks the
// awsJson1_1 protocol (POST /, Content-Type application/x-amz-json-1.1,
// X-Amz-Target secretsmanager.<Operation>, SigV4-signed) and keeps versions
// and staging labels as AWS does: a label is on at most one version; a
// label given to PutSecretValue or UpdateSecretVersionStage moves off the
// version holding it; moving AWSCURRENT moves AWSPREVIOUS to the version it
// left; the first version of a secret is always AWSCURRENT; PutSecretValue
// with an existing ClientRequestToken is a no-op when the data is the same
// and ResourceExistsException otherwise. Request and response shapes and
// error bodies follow the SDK's request_snapshot and response_snapshot
// files (service/secretsmanager@v1.50.12).
type SecretsManager struct {
	t   testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	secrets map[string]*fakeSecret // by name
	calls   map[string]int         // by operation
	// echoValue makes every PutSecretValue fail with an error message that
	// quotes the secret data, to prove the target scrubs errors.
	echoValue bool

	conns atomic.Int64 // TCP connections accepted
}

type fakeSecret struct {
	name, arn string
	deleted   bool
	// recoveryDays is the recovery window DeleteSecret was given.
	recoveryDays int64
	rotation     bool
	versions     map[string]*fakeVersion
	order        []string // version ids in creation order
}

// The staging labels Secrets Manager moves by itself.
const (
	smLabelCurrent  = "AWSCURRENT"
	smLabelPrevious = "AWSPREVIOUS"
)

type fakeVersion struct {
	str    string
	labels []string
	seq    int
}

// NewSecretsManager starts a fake Secrets Manager (region us-east-1, access
// key id AKIDFAKE, any secret key); it stops when the test ends.
func NewSecretsManager(t testing.TB) *SecretsManager {
	t.Helper()
	f := &SecretsManager{t: t, secrets: map[string]*fakeSecret{}, calls: map[string]int{}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

// Client is a real SDK client pointed at the fake.
func (f *SecretsManager) Client() *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(f.srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFAKE", "fake-secret-access-key", ""),
		HTTPClient:   f.srv.Client(),
	})
}

// URL is the fake's endpoint (the target's endpoint setting).
func (f *SecretsManager) URL() string { return f.srv.URL }

// Conns is how many TCP connections the fake has accepted.
func (f *SecretsManager) Conns() int64 { return f.conns.Load() }

// AddSecret creates a secret directly (as if made in the console).
func (f *SecretsManager) AddSecret(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.create(name)
}

// MarkDeleted schedules a secret's deletion (as if done in the console).
func (f *SecretsManager) MarkDeleted(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[name].deleted = true
}

// SetRotation turns the secret's own (Lambda) rotation on or off.
func (f *SecretsManager) SetRotation(name string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[name].rotation = on
}

// SetEchoValue makes every PutSecretValue fail with an error message that
// quotes the secret data, to prove the target scrubs errors.
func (f *SecretsManager) SetEchoValue(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.echoValue = on
}

// Deleted reports whether a secret is scheduled for deletion, and with
// which recovery window (days; 0 when forced).
func (f *SecretsManager) Deleted(name string) (bool, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[name]
	if s == nil {
		return false, 0
	}
	return s.deleted, s.recoveryDays
}

// Current is the secret string of the version labelled AWSCURRENT ("" when
// the secret or the label does not exist).
func (f *SecretsManager) Current(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[name]
	if s == nil {
		return ""
	}
	for _, v := range s.versions {
		if slices.Contains(v.labels, smLabelCurrent) {
			return v.str
		}
	}
	return ""
}

func (f *SecretsManager) create(name string) *fakeSecret {
	s := &fakeSecret{name: name, arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + name + "-AbCdEf", versions: map[string]*fakeVersion{}}
	f.secrets[name] = s
	return s
}

func (f *SecretsManager) lookup(id string) *fakeSecret {
	if s, ok := f.secrets[id]; ok {
		return s
	}
	for _, s := range f.secrets {
		if s.arn == id {
			return s
		}
	}
	return nil
}

// Labels returns label -> version id of a secret, and how many versions it has.
func (f *SecretsManager) Labels(name string) (map[string]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[name]
	out := map[string]string{}
	if s == nil {
		return out, 0
	}
	for id, v := range s.versions {
		for _, l := range v.labels {
			out[l] = id
		}
	}
	return out, len(s.versions)
}

// Count is how many calls of this operation the fake has answered.
func (f *SecretsManager) Count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

type smError struct {
	status int
	typ    string
	msg    string
}

func smErrf(typ, format string, args ...any) *smError {
	return &smError{status: http.StatusBadRequest, typ: typ, msg: fmt.Sprintf(format, args...)}
}

func (f *SecretsManager) serve(w http.ResponseWriter, req *http.Request) {
	reply := func(status int, v any, e *smError) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-Requestid", "00000000-0000-0000-0000-000000000001")
		if e != nil {
			w.WriteHeader(e.status)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.typ, "Message": e.msg})
			return
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	target := req.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "secretsmanager.")
	switch {
	case req.Method != http.MethodPost || req.URL.Path != "/":
		f.t.Errorf("fake secrets manager: %s %s, want POST /", req.Method, req.URL.Path)
		reply(0, nil, smErrf("UnknownOperationException", "bad method or path"))
		return
	case req.Header.Get("Content-Type") != "application/x-amz-json-1.1":
		f.t.Errorf("fake secrets manager: Content-Type %q", req.Header.Get("Content-Type"))
		reply(0, nil, smErrf("SerializationException", "bad content type"))
		return
	case !ok:
		f.t.Errorf("fake secrets manager: X-Amz-Target %q", target)
		reply(0, nil, smErrf("UnknownOperationException", "unknown operation"))
		return
	}
	if auth := req.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDFAKE/") ||
		!strings.Contains(auth, "/us-east-1/secretsmanager/aws4_request") {
		reply(0, nil, &smError{status: http.StatusForbidden, typ: "UnrecognizedClientException", msg: "The security token included in the request is invalid."})
		return
	}
	body, _ := io.ReadAll(req.Body)
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		reply(0, nil, smErrf("SerializationException", "body is not a JSON object"))
		return
	}
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(in[k], &s)
		return s
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	var (
		out any
		e   *smError
	)
	switch op {
	case "CreateSecret":
		out, e = f.createSecret(str("Name"), str("ClientRequestToken"), in["SecretString"], str("SecretString"))
	case "DescribeSecret":
		out, e = f.describeSecret(str("SecretId"))
	case "GetSecretValue":
		out, e = f.getSecretValue(str("SecretId"), str("VersionId"), str("VersionStage"))
	case "PutSecretValue":
		var stages []string
		_ = json.Unmarshal(in["VersionStages"], &stages)
		out, e = f.putSecretValue(str("SecretId"), str("ClientRequestToken"), str("SecretString"), stages)
	case "DeleteSecret":
		var days *int64
		_ = json.Unmarshal(in["RecoveryWindowInDays"], &days)
		var force bool
		_ = json.Unmarshal(in["ForceDeleteWithoutRecovery"], &force)
		out, e = f.deleteSecret(str("SecretId"), days, force)
	case "UpdateSecretVersionStage":
		out, e = f.updateSecretVersionStage(str("SecretId"), str("VersionStage"), str("MoveToVersionId"), str("RemoveFromVersionId"))
	default:
		e = smErrf("UnknownOperationException", "operation %s is not supported by the fake", op)
	}
	reply(http.StatusOK, out, e)
}

func smValidToken(tok string) *smError {
	if len(tok) < 32 || len(tok) > 64 {
		return smErrf("ValidationException", "1 validation error detected: Value at 'clientRequestToken' failed to satisfy constraint: Member must have length between 32 and 64")
	}
	return nil
}

func (f *SecretsManager) live(id string) (*fakeSecret, *smError) {
	s := f.lookup(id)
	if s == nil {
		return nil, smErrf("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
	}
	if s.deleted {
		return nil, smErrf("InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
	}
	return s, nil
}

// attach puts label on version id, moving it off any other version; moving
// AWSCURRENT moves AWSPREVIOUS to the version it left.
func (s *fakeSecret) attach(label, id string) {
	from := ""
	for vid, v := range s.versions {
		if i := slices.Index(v.labels, label); i >= 0 && vid != id {
			v.labels = slices.Delete(v.labels, i, i+1)
			from = vid
		}
	}
	if v := s.versions[id]; !slices.Contains(v.labels, label) {
		v.labels = append(v.labels, label)
	}
	if label == smLabelCurrent && from != "" {
		s.attach(smLabelPrevious, from)
	}
}

func (s *fakeSecret) addVersion(id, str string, stages []string) {
	first := len(s.versions) == 0
	s.versions[id] = &fakeVersion{str: str, seq: len(s.order)}
	s.order = append(s.order, id)
	if len(stages) == 0 || (first && !slices.Contains(stages, smLabelCurrent)) {
		stages = append(stages, smLabelCurrent)
	}
	for _, l := range stages {
		s.attach(l, id)
	}
}

func (s *fakeSecret) labelled() map[string][]string {
	m := map[string][]string{}
	for id, v := range s.versions {
		if len(v.labels) > 0 {
			m[id] = slices.Clone(v.labels)
		}
	}
	return m
}

func (f *SecretsManager) createSecret(name, token string, rawValue json.RawMessage, value string) (any, *smError) {
	if s := f.secrets[name]; s != nil {
		if s.deleted {
			return nil, smErrf("InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.")
		}
		return nil, smErrf("ResourceExistsException", "The operation failed because the secret %s already exists.", name)
	}
	out := map[string]any{}
	if rawValue != nil {
		if e := smValidToken(token); e != nil {
			return nil, e
		}
	}
	s := f.create(name)
	out["ARN"], out["Name"] = s.arn, s.name
	if rawValue != nil {
		s.addVersion(token, value, nil)
		out["VersionId"] = token
	}
	return out, nil
}

func (f *SecretsManager) describeSecret(id string) (any, *smError) {
	s := f.lookup(id)
	if s == nil {
		return nil, smErrf("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
	}
	out := map[string]any{
		"ARN": s.arn, "Name": s.name, "CreatedDate": 946684800, "LastChangedDate": 946684800,
		"VersionIdsToStages": s.labelled(),
	}
	if s.rotation {
		out["RotationEnabled"] = true
		out["RotationLambdaARN"] = "arn:aws:lambda:us-east-1:123456789012:function:rotate"
	}
	if s.deleted {
		out["DeletedDate"] = 946684800
	}
	return out, nil
}

func (f *SecretsManager) getSecretValue(id, versionID, stage string) (any, *smError) {
	s, e := f.live(id)
	if e != nil {
		return nil, e
	}
	if versionID == "" && stage == "" {
		stage = smLabelCurrent
	}
	for _, vid := range s.order {
		v := s.versions[vid]
		if (versionID == "" || vid == versionID) && (stage == "" || slices.Contains(v.labels, stage)) {
			return map[string]any{
				"ARN": s.arn, "Name": s.name, "VersionId": vid, "SecretString": v.str,
				"VersionStages": slices.Clone(v.labels), "CreatedDate": 946684800,
			}, nil
		}
	}
	return nil, smErrf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId %q, staging label %q", versionID, stage)
}

func (f *SecretsManager) putSecretValue(id, token, value string, stages []string) (any, *smError) {
	s, e := f.live(id)
	if e != nil {
		return nil, e
	}
	if f.echoValue {
		return nil, &smError{status: http.StatusInternalServerError, typ: "InternalServiceError", msg: "could not store " + value}
	}
	if e := smValidToken(token); e != nil {
		return nil, e
	}
	if v, ok := s.versions[token]; ok {
		if v.str != value {
			return nil, smErrf("ResourceExistsException", "You can't modify an existing version, you can only create a new version.")
		}
		return map[string]any{"ARN": s.arn, "Name": s.name, "VersionId": token, "VersionStages": slices.Clone(v.labels)}, nil
	}
	s.addVersion(token, value, slices.Clone(stages))
	return map[string]any{"ARN": s.arn, "Name": s.name, "VersionId": token, "VersionStages": slices.Clone(s.versions[token].labels)}, nil
}

func (f *SecretsManager) updateSecretVersionStage(id, label, moveTo, removeFrom string) (any, *smError) {
	s, e := f.live(id)
	if e != nil {
		return nil, e
	}
	if label == "" {
		return nil, smErrf("ValidationException", "1 validation error detected: VersionStage must not be null")
	}
	holder := ""
	for vid, v := range s.versions {
		if slices.Contains(v.labels, label) {
			holder = vid
		}
	}
	if moveTo != "" {
		if _, ok := s.versions[moveTo]; !ok {
			return nil, smErrf("InvalidParameterException", "The version %s doesn't exist.", moveTo)
		}
	}
	if removeFrom != "" && removeFrom != holder {
		return nil, smErrf("InvalidParameterException", "The parameter RemoveFromVersionId doesn't match the version the staging label %s is attached to.", label)
	}
	if moveTo != "" && holder != "" && holder != moveTo && removeFrom == "" {
		return nil, smErrf("InvalidParameterException", "The staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.", label, holder)
	}
	switch {
	case moveTo != "":
		s.attach(label, moveTo)
	case removeFrom != "":
		if label == smLabelCurrent {
			return nil, smErrf("InvalidParameterException", "You can only move staging label AWSCURRENT to a different secret version. It can't be completely removed.")
		}
		v := s.versions[removeFrom]
		v.labels = slices.DeleteFunc(v.labels, func(l string) bool { return l == label })
	}
	return map[string]any{"ARN": s.arn, "Name": s.name}, nil
}

// deleteSecret schedules a secret's deletion as AWS does: with a recovery
// window of 7 to 30 days (default 30), or at once with
// ForceDeleteWithoutRecovery, never both; a deleted secret can no longer be
// read or changed.
func (f *SecretsManager) deleteSecret(id string, days *int64, force bool) (any, *smError) {
	s, e := f.live(id)
	if e != nil {
		return nil, e
	}
	n := int64(30)
	switch {
	case force && days != nil:
		return nil, smErrf("InvalidParameterException", "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	case force:
		n = 0
	case days != nil:
		n = *days
		if n < 7 || n > 30 {
			return nil, smErrf("InvalidParameterException", "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
		}
	}
	s.deleted, s.recoveryDays = true, n
	return map[string]any{"ARN": s.arn, "Name": s.name, "DeletionDate": 946684800 + n*86400}, nil
}
