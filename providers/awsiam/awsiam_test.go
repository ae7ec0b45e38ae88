package awsiam

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/testaws"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/providertest"
)

func TestMain(m *testing.M) {
	// No shared config, credentials or IMDS lookups from the test machine.
	for k, v := range map[string]string{"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true"} {
		_ = os.Setenv(k, v)
	}
	goleak.VerifyTestMain(m)
}

const user = "mcp-reader"

// newProvider builds a provider through the factory, with the fake's admin
// key as static credentials (references resolved) and the fake as both
// endpoints: the real IAM and STS clients of the AWS SDK talk to it.
func newProvider(t *testing.T, f *testaws.Fake, extra settings.Map, logger *slog.Logger) *Provider {
	t.Helper()
	s := settings.Map{
		"access_key_id":     secret.NewString(f.AdminID),
		"secret_access_key": secret.NewString(f.AdminKey),
		"iam_endpoint":      f.URL(),
		"sts_endpoint":      f.URL(),
		"region":            "eu-central-1",
	}
	for k, v := range extra {
		s[k] = v
	}
	p, err := Factory().New(t.Context(), providers.Env{Name: "aws-test", Settings: s, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Provider)
}

// resource asks STS who a version's key is, as a consumer's SDK would.
type resource struct{ f *testaws.Fake }

func (r *resource) Accepts(ctx context.Context, v providers.VersionRef) (bool, error) {
	id, sk, err := parseValue(v.Metadata[MetaFormat], v.Value)
	if err != nil {
		return false, nil
	}
	client := sts.New(sts.Options{Region: "eu-central-1", BaseEndpoint: aws.String(r.f.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(id, sk.RevealString(), "")})
	out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "InvalidClientTokenId" {
		return false, nil
	}
	if err != nil {
		return false, errors.New("cannot reach the fake STS")
	}
	return isUserARN(aws.ToString(out.Arn), user), nil
}

func (r *resource) Stall(*testing.T) func() { return r.f.Stall() }

func TestExercise(t *testing.T) {
	t.Parallel()
	for _, format := range []string{FormatJSON, FormatDotenv} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			providertest.Exercise(t, providertest.Harness{
				Factory:       Factory(),
				MaxLiveValues: 2,
				Parallel:      true,
				New: func(t *testing.T, logger *slog.Logger) providertest.Instance {
					f := testaws.New(t, user)
					f.SetPropagation(300 * time.Millisecond) // a new key works at STS only after a while
					p := newProvider(t, f, settings.Map{"format": format}, logger)
					return providertest.Instance{
						Provider: p,
						Resource: &resource{f: f},
						Settings: settings.Map{"user": user},
						Secrets:  []secret.Value{secret.NewString(f.AdminKey)},
					}
				},
				SecretParts: func(v providers.VersionRef) []secret.Value {
					_, sk, err := parseValue(v.Metadata[MetaFormat], v.Value)
					if err != nil {
						return []secret.Value{v.Value}
					}
					return []secret.Value{sk}
				},
			})
		})
	}
}

func common(versionID string) providers.Common {
	return providers.Common{CredentialID: "aws-reader", VersionID: versionID, Settings: settings.Map{"user": user}}
}

func mint(t *testing.T, p *Provider, cur *providers.VersionRef) providers.VersionRef {
	t.Helper()
	m, err := p.Mint(t.Context(), providers.MintRequest{Common: common("v"), Current: cur})
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return providers.VersionRef{VersionID: "v", Value: m.Value, Metadata: m.Metadata}
}

// TestVerifySignsWithNewKey: GetCallerIdentity in Verify is signed by the
// new key (the fake checks the signature with that key's secret), never by
// the admin key, and IAM calls by the admin key only.
func TestVerifySignsWithNewKey(t *testing.T) {
	t.Parallel()
	f := testaws.New(t, user)
	p := newProvider(t, f, nil, nil)
	v := mint(t, p, nil)
	resp, err := p.Verify(t.Context(), providers.VerifyRequest{Common: common("v"), Value: v.Value, Metadata: v.Metadata})
	if err != nil {
		t.Fatal(err)
	}
	id := v.Metadata[MetaAccessKeyID]
	if got := f.LastSTSSigner(); got != id {
		t.Fatalf("STS was called with key %q, want the new key %s", got, id)
	}
	if resp.Evidence[MetaAccessKeyID] != id || !strings.HasSuffix(resp.Evidence["arn"], ":user/mcp/"+user) {
		t.Fatalf("evidence %v", resp.Evidence)
	}
	signers := f.IAMSigners()
	if len(signers) != 1 || signers[f.AdminID] == 0 {
		t.Fatalf("IAM calls were signed by %v, want the admin key only", signers)
	}
}

// TestFakeChecksSignatures: the fake refuses a request signed with a wrong
// secret for a known key id, so its signature check can fail.
func TestFakeChecksSignatures(t *testing.T) {
	t.Parallel()
	f := testaws.New(t, user)
	k := f.AddKey(user, "Active")
	for _, tc := range []struct {
		secret, code string
	}{{k.Secret + "x", "SignatureDoesNotMatch"}, {k.Secret, ""}} {
		client := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.URL()),
			Credentials: credentials.NewStaticCredentialsProvider(k.ID, tc.secret, "")})
		_, err := client.GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
		var api smithy.APIError
		switch {
		case tc.code == "" && err != nil:
			t.Fatalf("a correctly signed request failed: %v", err)
		case tc.code != "" && (!errors.As(err, &api) || api.ErrorCode() != tc.code):
			t.Fatalf("a wrongly signed request: err %v, want %s", err, tc.code)
		}
	}
	// A tampered body (same headers, same signature) is refused too.
	req, _ := http.NewRequest(http.MethodPost, f.URL(), strings.NewReader("Action=GetCallerIdentity&Version=2011-06-15"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+k.ID+"/"+time.Now().UTC().Format("20060102")+"/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="+strings.Repeat("0", 64))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a forged signature got status %d", resp.StatusCode)
	}
}

// TestRefusesTwoForeignKeys: a user that already has two keys, neither of
// them the current version's, stops the rotation with a permanent error
// naming both; with one of them current, the error is retryable.
func TestRefusesTwoForeignKeys(t *testing.T) {
	t.Parallel()
	f := testaws.New(t, user)
	k1, k2 := f.AddKey(user, "Active"), f.AddKey(user, "Inactive")
	logs := &testlog.Buffer{}
	p := newProvider(t, f, nil, slog.New(slog.NewTextHandler(logs, nil)))
	_, err := p.Mint(t.Context(), providers.MintRequest{Common: common("v1")})
	if !errors.Is(err, providers.ErrPermanent) || !strings.Contains(err.Error(), k1.ID) || !strings.Contains(err.Error(), k2.ID) ||
		!strings.Contains(err.Error(), "neither is this credential's current version") {
		t.Fatalf("err = %v", err)
	}
	if f.KeyCount(user) != 2 {
		t.Fatal("a key was created or deleted")
	}
	cur := &providers.VersionRef{Metadata: map[string]string{MetaAccessKeyID: k1.ID}}
	_, err = p.Mint(t.Context(), providers.MintRequest{Common: common("v2"), Current: cur})
	if err == nil || errors.Is(err, providers.ErrPermanent) || !strings.Contains(err.Error(), k2.ID) {
		t.Fatalf("with one current key: err = %v, want a retryable error naming %s", err, k2.ID)
	}
	for _, s := range []string{k1.Secret, k2.Secret, f.AdminKey} {
		if strings.Contains(err.Error(), s) || strings.Contains(logs.String(), s) {
			t.Fatal("a secret key appears in an error or the log")
		}
	}
}

// TestVerifyWaitsForPropagation: a key STS does not accept yet is asked
// again until propagation_wait; with no wait, Verify fails at once.
func TestVerifyWaitsForPropagation(t *testing.T) {
	t.Parallel()
	f := testaws.New(t, user)
	f.SetPropagation(1500 * time.Millisecond)
	p := newProvider(t, f, settings.Map{"propagation_wait": "10s"}, nil)
	v := mint(t, p, nil)
	start := time.Now()
	if _, err := p.Verify(t.Context(), providers.VerifyRequest{Common: common("v"), Value: v.Value, Metadata: v.Metadata}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("Verify returned after %s, before the key propagated", d)
	}
	impatient := newProvider(t, f, settings.Map{"propagation_wait": "0s"}, nil)
	w := mint(t, impatient, &v)
	_, err := impatient.Verify(t.Context(), providers.VerifyRequest{Common: common("w"), Value: w.Value, Metadata: w.Metadata})
	if err == nil || !strings.Contains(err.Error(), "InvalidClientTokenId") {
		t.Fatalf("err = %v", err)
	}
}

// TestRevokeIsIdempotent: the key ends deleted; revoking again, or a key
// deleted by hand, is success; the other key stays.
func TestRevokeIsIdempotent(t *testing.T) {
	t.Parallel()
	f := testaws.New(t, user)
	p := newProvider(t, f, nil, nil)
	old := mint(t, p, nil)
	next := mint(t, p, &old)
	for range 2 {
		if err := p.Revoke(t.Context(), providers.RevokeRequest{Common: common("v"), Value: old.Value, Metadata: old.Metadata}); err != nil {
			t.Fatal(err)
		}
	}
	oldLeft, nextLeft := f.HasKey(old.Metadata[MetaAccessKeyID]), f.HasKey(next.Metadata[MetaAccessKeyID])
	if oldLeft || !nextLeft {
		t.Fatalf("after revoke: old key present %v, next key present %v", oldLeft, nextLeft)
	}
	// A version whose metadata names another key than its value is refused.
	bad := next
	bad.Metadata = map[string]string{MetaAccessKeyID: old.Metadata[MetaAccessKeyID], MetaFormat: FormatJSON}
	if err := p.Revoke(t.Context(), providers.RevokeRequest{Common: common("x"), Value: bad.Value, Metadata: bad.Metadata}); !errors.Is(err, providers.ErrPermanent) {
		t.Fatalf("mismatched metadata: err = %v", err)
	}
	if f.KeyCount(user) != 1 {
		t.Fatal("the current key was touched")
	}
}

func TestUnknownUser(t *testing.T) {
	t.Parallel()
	f := testaws.New(t, user)
	p := newProvider(t, f, nil, nil)
	_, err := p.Mint(t.Context(), providers.MintRequest{Common: providers.Common{Settings: settings.Map{"user": "nobody"}}})
	if !errors.Is(err, providers.ErrPermanent) || !strings.Contains(err.Error(), "IAM user nobody does not exist") {
		t.Fatalf("err = %v", err)
	}
}

func TestIsUserARN(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"arn:aws:iam::123456789012:user/mcp-reader":            true,
		"arn:aws:iam::123456789012:user/mcp/mcp-reader":        true,
		"arn:aws-cn:iam::123456789012:user/mcp-reader":         true,
		"arn:aws:iam::123456789012:user/mcp-reader-2":          false,
		"arn:aws:sts::123456789012:assumed-role/r/mcp-reader":  false,
		"arn:aws:iam::123456789012:role/mcp-reader":            false,
		"arn:aws:iam::123456789012:user/mcp-reader/other-user": false,
	}
	for arn, want := range tests {
		if got := isUserARN(arn, user); got != want {
			t.Errorf("isUserARN(%q) = %v, want %v", arn, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	provider := map[string]struct {
		in     settings.Map
		fields []string
	}{
		"chain":        {settings.Map{}, nil},
		"static":       {settings.Map{"access_key_id": "${env:AWS_ADMIN_ID}", "secret_access_key": "${env:AWS_ADMIN_SECRET}", "format": "dotenv", "region": "eu-central-1", "propagation_wait": "1m"}, nil},
		"half":         {settings.Map{"access_key_id": "${env:AWS_ADMIN_ID}"}, []string{"secret_access_key"}},
		"token alone":  {settings.Map{"session_token": "${env:T}"}, []string{"session_token"}},
		"bad format":   {settings.Map{"format": "ini"}, []string{"format"}},
		"bad endpoint": {settings.Map{"iam_endpoint": "iam.amazonaws.com"}, []string{"iam_endpoint"}},
		"long wait":    {settings.Map{"propagation_wait": "1h"}, []string{"propagation_wait"}},
		"unknown":      {settings.Map{"user": "x"}, []string{"user"}},
	}
	for name, tc := range provider {
		var got []string
		for _, e := range ValidateProvider(tc.in) {
			got = append(got, e.Field)
		}
		if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("provider %s: error fields %v, want %v", name, got, tc.fields)
		}
	}
	cred := map[string]struct {
		in     settings.Map
		fields []string
	}{
		"user":    {settings.Map{"user": "mcp-reader@example.com"}, nil},
		"none":    {settings.Map{}, []string{"user"}},
		"bad":     {settings.Map{"user": "a/b"}, []string{"user"}},
		"long":    {settings.Map{"user": strings.Repeat("u", 65)}, []string{"user"}},
		"unknown": {settings.Map{"user": "u", "role": "r"}, []string{"role"}},
	}
	for name, tc := range cred {
		var got []string
		for _, e := range ValidateCredential(tc.in) {
			got = append(got, e.Field)
		}
		if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("credential %s: error fields %v, want %v", name, got, tc.fields)
		}
	}
}

func TestValueFormats(t *testing.T) {
	t.Parallel()
	sk := secret.NewString("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	for _, format := range []string{FormatJSON, FormatDotenv} {
		v := render(format, "AKIAIOSFODNN7EXAMPLE", sk)
		id, got, err := parseValue(format, v)
		if err != nil || id != "AKIAIOSFODNN7EXAMPLE" || !got.Equal(sk) {
			t.Fatalf("%s: round trip gives %q, %v", format, id, err)
		}
	}
	if !strings.Contains(render(FormatDotenv, "AKIAIOSFODNN7EXAMPLE", sk).RevealString(), "AWS_SECRET_ACCESS_KEY=wJal") {
		t.Fatal("dotenv form")
	}
	if _, _, err := parseValue(FormatJSON, secret.NewString(`{"AWS_ACCESS_KEY_ID":"x"}`)); err == nil || strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID\":\"x") {
		t.Fatalf("err = %v", err)
	}
}
