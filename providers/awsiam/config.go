package awsiam

import (
	"net/url"
	"regexp"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// Formats of the published value.
const (
	// FormatJSON publishes {"AWS_ACCESS_KEY_ID": "...", "AWS_SECRET_ACCESS_KEY": "..."}:
	// one Secrets Manager secret consumers read (or reference with
	// ${aws-sm:id#AWS_SECRET_ACCESS_KEY}).
	FormatJSON = "json"
	// FormatDotenv publishes two lines, AWS_ACCESS_KEY_ID=... and
	// AWS_SECRET_ACCESS_KEY=..., for a raw file target that a launcher
	// sources into an MCP server's environment.
	FormatDotenv = "dotenv"
)

// Names of the two fields of a value, as the AWS SDKs read them from the
// environment.
const (
	EnvAccessKeyID     = "AWS_ACCESS_KEY_ID"
	EnvSecretAccessKey = "AWS_SECRET_ACCESS_KEY"
)

// Metadata keys recorded with every version.
const (
	MetaAccessKeyID = "access_key_id"
	MetaUser        = "user"
	MetaFormat      = "format"
)

// DefaultRegion signs IAM requests (IAM is a global service, signed for
// us-east-1) and picks the STS endpoint when no region is configured.
const DefaultRegion = "us-east-1"

// DefaultPropagationWait is how long Activate and Verify wait for a new key
// to work at STS (IAM is eventually consistent: a new key may be refused
// for seconds).
const DefaultPropagationWait = 30 * time.Second

// Config is the configuration of an aws-iam-access-key provider.
type Config struct {
	// AccessKeyID, SecretAccessKey and SessionToken are the administrative
	// credentials (references) that may list, create, update and delete the
	// managed users' access keys. Empty means the standard AWS credential
	// chain (environment, shared files, SSO, IMDS, IRSA).
	AccessKeyID, SecretAccessKey, SessionToken secret.Value
	// Region is the STS region of verification; empty means the AWS
	// configuration chain, else DefaultRegion.
	Region string
	// IAMEndpoint and STSEndpoint override the service endpoints (a VPC
	// endpoint, a test server).
	IAMEndpoint, STSEndpoint string
	// Format is FormatJSON (default) or FormatDotenv.
	Format string
	// PropagationWait bounds how long Activate and Verify wait for STS to
	// accept a new key.
	PropagationWait time.Duration
}

// Cred is the per-credential configuration.
type Cred struct {
	// User is the IAM user whose access keys rotate.
	User string
}

// iamUserName is IAM's pattern for user names.
var iamUserName = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)

func parse(s settings.Map) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := Config{
		AccessKeyID:     r.Secret("access_key_id"),
		SecretAccessKey: r.Secret("secret_access_key"),
		SessionToken:    r.Secret("session_token"),
		Region:          r.String("region", ""),
		IAMEndpoint:     r.String("iam_endpoint", ""),
		STSEndpoint:     r.String("sts_endpoint", ""),
		Format:          r.OneOf("format", FormatJSON, FormatJSON, FormatDotenv),
		PropagationWait: r.Duration("propagation_wait", DefaultPropagationWait),
	}
	for _, f := range []struct{ field, v, example string }{
		{"iam_endpoint", c.IAMEndpoint, "https://iam.amazonaws.com"},
		{"sts_endpoint", c.STSEndpoint, "https://sts.eu-central-1.amazonaws.com"},
	} {
		if f.v == "" {
			continue
		}
		u, err := url.Parse(f.v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			r.Fail(f.field, "must be an http(s) URL such as %s", f.example)
		}
	}
	switch {
	case c.AccessKeyID.IsZero() != c.SecretAccessKey.IsZero():
		r.Fail("secret_access_key", "access_key_id and secret_access_key must be given together (as references), or neither to use the AWS credential chain")
	case !c.SessionToken.IsZero() && c.AccessKeyID.IsZero():
		r.Fail("session_token", "needs access_key_id and secret_access_key")
	}
	if c.PropagationWait < 0 || c.PropagationWait > 5*time.Minute {
		r.Fail("propagation_wait", "must be between 0 and 5m")
	}
	r.Unknown()
	return c, r.Errors()
}

func parseCred(s settings.Map) (Cred, settings.Errors) {
	r := settings.NewReader(s)
	c := Cred{User: r.RequiredString("user")}
	if c.User != "" && !iamUserName.MatchString(c.User) {
		r.Fail("user", "must be an IAM user name: 1–64 letters, digits or +=,.@_-")
	}
	r.Unknown()
	return c, r.Errors()
}

// ValidateProvider checks provider-level settings.
func ValidateProvider(s settings.Map) settings.Errors {
	_, errs := parse(s)
	return errs
}

// ValidateCredential checks per-credential settings.
func ValidateCredential(s settings.Map) settings.Errors {
	_, errs := parseCred(s)
	return errs
}
