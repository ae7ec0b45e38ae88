package awssm

import (
	"net/url"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// What Stage does when another party's version already holds AWSPENDING.
const (
	// ForeignPendingFail refuses to stage: someone else (an AWS rotation
	// Lambda, another tool) is in the middle of a rotation of the secret.
	ForeignPendingFail = "fail"
	// ForeignPendingReplace moves AWSPENDING to rotator's version anyway.
	ForeignPendingReplace = "replace"
)

// DefaultRecoveryWindowDays is the recovery window of a withdrawn secret
// when recovery_window_days is not set.
const DefaultRecoveryWindowDays = 30

// Config is the configuration of an aws-secretsmanager target.
type Config struct {
	// SecretID is the name or ARN of the secret.
	SecretID string
	// Region is the AWS region; empty means the standard AWS configuration
	// chain (AWS_REGION, the shared config file's profile).
	Region string
	// Endpoint overrides the service endpoint (LocalStack, tests, a VPC
	// endpoint); empty means the region's standard endpoint.
	Endpoint string
	// CreateIfMissing creates the secret at the first promotion when it does
	// not exist; otherwise a missing secret is a permanent error.
	CreateIfMissing bool
	// KMSKeyID is the KMS key a created secret is encrypted with; empty means
	// the account's aws/secretsmanager key.
	KMSKeyID string
	// OnForeignPending is ForeignPendingFail or ForeignPendingReplace.
	OnForeignPending string
	// RecoveryWindowDays is how long a secret withdrawn by apply --prune
	// (Withdraw: DeleteSecret) can still be restored, 7 to 30 days (default
	// 30, AWS's own default).
	RecoveryWindowDays int
	// AccessKeyID, SecretAccessKey and SessionToken are static credentials
	// (references in the configuration). Empty means the standard AWS
	// credential chain (environment, shared files, SSO, IMDS, IRSA).
	AccessKeyID, SecretAccessKey, SessionToken secret.Value
}

func parse(s settings.Map) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := Config{
		SecretID:           r.RequiredString("secret_id"),
		Region:             r.String("region", ""),
		Endpoint:           r.String("endpoint", ""),
		CreateIfMissing:    r.Bool("create_if_missing", false),
		KMSKeyID:           r.String("kms_key_id", ""),
		OnForeignPending:   r.OneOf("on_foreign_pending", ForeignPendingFail, ForeignPendingFail, ForeignPendingReplace),
		RecoveryWindowDays: r.Int("recovery_window_days", DefaultRecoveryWindowDays, 7, 30),
		AccessKeyID:        r.Secret("access_key_id"),
		SecretAccessKey:    r.Secret("secret_access_key"),
		SessionToken:       r.Secret("session_token"),
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			r.Fail("endpoint", "must be an http(s) URL such as https://secretsmanager.eu-central-1.amazonaws.com or http://localhost:4566")
		}
	}
	switch {
	case c.AccessKeyID.IsZero() != c.SecretAccessKey.IsZero():
		r.Fail("secret_access_key", "access_key_id and secret_access_key must be given together (as references), or neither to use the AWS credential chain")
	case !c.SessionToken.IsZero() && c.AccessKeyID.IsZero():
		r.Fail("session_token", "needs access_key_id and secret_access_key")
	}
	r.Unknown()
	return c, r.Errors()
}

// Validate checks an aws-secretsmanager target's settings.
func Validate(s settings.Map) settings.Errors {
	_, errs := parse(s)
	return errs
}

// ValidateKey refuses binding keys: a secret holds the value of exactly
// one credential, so that a staged version never mixes two credentials'
// rotations. Give each credential its own target (secret_id).
func ValidateKey(key string) error {
	if key != "" {
		return errKeyed
	}
	return nil
}
