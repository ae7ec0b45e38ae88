// Package awsiam is the aws-iam-access-key provider: it rotates the access
// key of an IAM user with the two-key alternation IAM allows (at most two
// access keys per user).
//
// A rotation creates a second key (Mint: CreateAccessKey), proves it with
// STS GetCallerIdentity signed by the new key, whose ARN must be the
// configured user's (Verify), and after cutover and grace retires the old
// key (Revoke: UpdateAccessKey Inactive, then DeleteAccessKey; a key that is
// already gone is success). Activate has nothing to do: a new key is active.
// Both keys are valid during grace (overlap).
//
// Mint refuses to start when the user already has two keys and neither is
// the credential's current version, naming them: a third key cannot be
// created, and rotator deletes no key it did not mint. Key ids are not
// secret and appear in errors, logs and metadata; secret access keys never
// do.
package awsiam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/providers"
)

// Type is the provider type name.
const Type = "aws-iam-access-key"

var capabilities = providers.Capabilities{Overlap: true, Revocable: true}

// Factory returns the registry entry of the aws-iam-access-key provider.
func Factory() providers.Factory {
	return providers.Factory{
		Description:        "AWS IAM user access keys, two-key alternation (create, verify with STS, retire the old key after grace)",
		Capabilities:       capabilities,
		ValidateProvider:   ValidateProvider,
		ValidateCredential: ValidateCredential,
		New: func(ctx context.Context, env providers.Env) (providers.Provider, error) {
			cfg, errs := parse(env.Settings)
			if len(errs) > 0 {
				return nil, fmt.Errorf("aws-iam-access-key: %w: %w", providers.ErrPermanent, errs[0])
			}
			awsCfg, err := LoadAWSConfig(ctx, cfg)
			if err != nil {
				return nil, fmt.Errorf("aws-iam-access-key: %w", err)
			}
			return New(awsCfg, cfg, env.Logger), nil
		},
	}
}

// LoadAWSConfig reads the standard AWS configuration chain, overridden by
// cfg's region and static administrative credentials where given.
func LoadAWSConfig(ctx context.Context, cfg Config) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if !cfg.AccessKeyID.IsZero() {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			cfg.AccessKeyID.RevealString(), cfg.SecretAccessKey.RevealString(), cfg.SessionToken.RevealString())))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	return awsCfg, nil
}

// Provider rotates IAM user access keys. It is safe for concurrent use.
type Provider struct {
	cfg    Config
	awsCfg aws.Config
	iam    *iam.Client
	log    *slog.Logger
}

// New returns a provider that manages keys with awsCfg's credentials.
func New(awsCfg aws.Config, cfg Config, logger *slog.Logger) *Provider {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Format == "" {
		cfg.Format = FormatJSON
	}
	client := iam.NewFromConfig(awsCfg, func(o *iam.Options) {
		// IAM is global: its requests are signed for us-east-1 whatever
		// the region of verification.
		o.Region = DefaultRegion
		if cfg.IAMEndpoint != "" {
			o.BaseEndpoint = aws.String(cfg.IAMEndpoint)
		}
	})
	return &Provider{cfg: cfg, awsCfg: awsCfg, iam: client, log: logger}
}

// Type implements providers.Provider.
func (p *Provider) Type() string { return Type }

// Capabilities implements providers.Provider.
func (p *Provider) Capabilities() providers.Capabilities { return capabilities }

func (p *Provider) credOf(c providers.Common) (Cred, error) {
	cr, errs := parseCred(c.Settings)
	if len(errs) > 0 {
		return Cred{}, fmt.Errorf("credential %s settings: %w: %w", c.CredentialID, providers.ErrPermanent, errs[0])
	}
	return cr, nil
}

// Mint implements providers.Provider: CreateAccessKey for the user, after
// checking that IAM's limit of two keys leaves room for it.
func (p *Provider) Mint(ctx context.Context, req providers.MintRequest) (providers.MintResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.MintResponse{}, err
	}
	cr, err := p.credOf(req.Common)
	if err != nil {
		return providers.MintResponse{}, err
	}
	keys, err := p.listKeys(ctx, cr.User)
	if err != nil {
		return providers.MintResponse{}, err
	}
	current := ""
	if req.Current != nil {
		current = req.Current.Metadata[MetaAccessKeyID]
	}
	if len(keys) >= 2 {
		return providers.MintResponse{}, twoKeys(cr.User, keys, current)
	}
	out, err := p.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(cr.User)})
	var limit *types.LimitExceededException
	if errors.As(err, &limit) {
		// Another key was created since the list (a concurrent mint, a
		// person): explain with the keys as they are now.
		if keys, lerr := p.listKeys(ctx, cr.User); lerr == nil && len(keys) >= 2 {
			return providers.MintResponse{}, twoKeys(cr.User, keys, current)
		}
	}
	if err != nil {
		return providers.MintResponse{}, p.fail(ctx, err, secret.Value{}, "creating an access key for IAM user %s", cr.User)
	}
	k := out.AccessKey
	if k == nil || aws.ToString(k.AccessKeyId) == "" || aws.ToString(k.SecretAccessKey) == "" {
		return providers.MintResponse{}, fmt.Errorf("aws-iam-access-key: creating an access key for IAM user %s: the response holds no key", cr.User)
	}
	id := aws.ToString(k.AccessKeyId)
	sk := secret.NewString(aws.ToString(k.SecretAccessKey))
	p.log.Info("created access key", slog.String("user", cr.User), slog.String(MetaAccessKeyID, id))
	return providers.MintResponse{
		Value:            render(p.cfg.Format, id, sk),
		ScopeNotReported: true,
		Metadata:         map[string]string{MetaAccessKeyID: id, MetaUser: cr.User, MetaFormat: p.cfg.Format},
	}, nil
}

// twoKeys explains why no key can be created: IAM allows two per user.
func twoKeys(user string, keys []types.AccessKeyMetadata, current string) error {
	var desc []string
	ours := false
	for _, k := range keys {
		id := aws.ToString(k.AccessKeyId)
		d := fmt.Sprintf("%s (%s, created %s)", id, k.Status, aws.ToTime(k.CreateDate).UTC().Format(time.RFC3339))
		if id == current && current != "" {
			ours = true
			d += " [current version]"
		}
		desc = append(desc, d)
	}
	if ours {
		// The other key may be the previous version awaiting retirement
		// after grace: a later attempt may find room.
		return fmt.Errorf("aws-iam-access-key: IAM user %s already has two access keys, %s; IAM allows two, so a new one cannot be created until the one that is not the current version is retired (after the previous rotation's grace) or deleted by hand if it is not rotator's",
			user, strings.Join(desc, " and "))
	}
	return fmt.Errorf("aws-iam-access-key: %w: IAM user %s already has two access keys, %s, and neither is this credential's current version; IAM allows two per user, so rotator cannot create one, and it deletes no key it did not mint. Delete the key no consumer uses (aws iam delete-access-key --user-name %s --access-key-id ID; check aws iam get-access-key-last-used first) and rotate again",
		providers.ErrPermanent, user, strings.Join(desc, " and "), user)
}

// listKeys returns the user's access keys (IAM returns at most two).
func (p *Provider) listKeys(ctx context.Context, user string) ([]types.AccessKeyMetadata, error) {
	out, err := p.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(user)})
	if err != nil {
		var nse *types.NoSuchEntityException
		if errors.As(err, &nse) {
			return nil, fmt.Errorf("aws-iam-access-key: %w: IAM user %s does not exist", providers.ErrPermanent, user)
		}
		return nil, p.fail(ctx, err, secret.Value{}, "listing the access keys of IAM user %s", user)
	}
	return out.AccessKeyMetadata, nil
}

// Activate implements providers.Provider: a new access key is active from
// its creation, but IAM is eventually consistent, so Activate waits (up to
// propagation_wait) until STS accepts the key: once it returns, consumers
// given the key can use it.
func (p *Provider) Activate(ctx context.Context, req providers.ActivateRequest) (providers.ActivateResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.ActivateResponse{}, err
	}
	if _, err := p.check(ctx, req.Common, req.Value, req.Metadata); err != nil {
		return providers.ActivateResponse{}, err
	}
	return providers.ActivateResponse{}, nil
}

// Verify implements providers.Provider: the key must be one of the user's
// and Active (IAM, with the admin credentials), and STS GetCallerIdentity
// signed with the new key must answer with the user's ARN.
func (p *Provider) Verify(ctx context.Context, req providers.VerifyRequest) (providers.VerifyResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.VerifyResponse{}, err
	}
	ev, err := p.check(ctx, req.Common, req.Value, req.Metadata)
	if err != nil {
		return providers.VerifyResponse{}, err
	}
	return providers.VerifyResponse{ScopeNotReported: true, Evidence: ev}, nil
}

// check proves a version's key: IAM lists it as the user's and Active, and
// STS GetCallerIdentity signed with it answers with the user's ARN. A key
// STS refuses (not propagated yet) is tried again, after 250 ms and then
// at doubling intervals up to 2 s, for up to propagation_wait.
func (p *Provider) check(ctx context.Context, c providers.Common, val secret.Value, meta map[string]string) (map[string]string, error) {
	cr, err := p.credOf(c)
	if err != nil {
		return nil, err
	}
	id, sk, err := p.open(c, val, meta)
	if err != nil {
		return nil, err
	}
	keys, err := p.listKeys(ctx, cr.User)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(keys, func(k types.AccessKeyMetadata) bool { return aws.ToString(k.AccessKeyId) == id })
	switch {
	case i < 0:
		return nil, fmt.Errorf("aws-iam-access-key: access key %s of version %s is not one of IAM user %s's keys", id, c.VersionID, cr.User)
	case keys[i].Status != types.StatusTypeActive:
		return nil, fmt.Errorf("aws-iam-access-key: access key %s of version %s is %s", id, c.VersionID, keys[i].Status)
	}
	client := sts.NewFromConfig(p.awsCfg, func(o *sts.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(id, sk.RevealString(), "")
		if p.cfg.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(p.cfg.STSEndpoint)
		}
	})
	deadline := time.Now().Add(p.cfg.PropagationWait)
	pause := 250 * time.Millisecond
	for {
		out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err == nil {
			arn := aws.ToString(out.Arn)
			if !isUserARN(arn, cr.User) {
				return nil, fmt.Errorf("aws-iam-access-key: %w: access key %s of version %s authenticates as %s, not as IAM user %s", providers.ErrPermanent, id, c.VersionID, arn, cr.User)
			}
			return map[string]string{
				MetaAccessKeyID: id, "arn": arn, "account": aws.ToString(out.Account),
				"check": "sts:GetCallerIdentity signed with the new key answered with the user's ARN; IAM lists the key as Active",
			}, nil
		}
		if !notYetValid(err) || !time.Now().Before(deadline) {
			return nil, p.fail(ctx, err, sk, "sts:GetCallerIdentity with access key %s of version %s", id, c.VersionID)
		}
		p.log.Debug("STS does not accept the new key yet; asking again", slog.String(MetaAccessKeyID, id))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("aws-iam-access-key: waiting for STS to accept access key %s: %w", id, ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// notYetValid reports whether STS refused a key in a way a key too new to
// have propagated is refused.
func notYetValid(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && (api.ErrorCode() == "InvalidClientTokenId" || api.ErrorCode() == "SignatureDoesNotMatch")
}

// isUserARN reports whether arn is the ARN of IAM user user (with any path):
// arn:aws:iam::123456789012:user/path/user.
func isUserARN(arn, user string) bool {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iam" || !strings.HasPrefix(parts[5], "user/") {
		return false
	}
	res := parts[5]
	return res[strings.LastIndex(res, "/")+1:] == user
}

// Revoke implements providers.Provider: the version's key is made Inactive,
// then deleted. A key that is already gone is success; a key that is not
// the value's (metadata and value disagree) is refused.
func (p *Provider) Revoke(ctx context.Context, req providers.RevokeRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if req.Value.IsZero() {
		return nil
	}
	cr, err := p.credOf(req.Common)
	if err != nil {
		return err
	}
	id, sk, err := p.open(req.Common, req.Value, req.Metadata)
	if err != nil {
		return err
	}
	var nse *types.NoSuchEntityException
	_, err = p.iam.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String(cr.User), AccessKeyId: aws.String(id), Status: types.StatusTypeInactive})
	switch {
	case errors.As(err, &nse):
		p.log.Debug("the access key is already gone; nothing to revoke", slog.String(MetaAccessKeyID, id), slog.String("version", req.VersionID))
		return nil
	case err != nil:
		return p.fail(ctx, err, sk, "deactivating access key %s of IAM user %s", id, cr.User)
	}
	_, err = p.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(cr.User), AccessKeyId: aws.String(id)})
	if err != nil && !errors.As(err, &nse) {
		return p.fail(ctx, err, sk, "deleting access key %s of IAM user %s (it is Inactive)", id, cr.User)
	}
	p.log.Info("revoked: access key deactivated and deleted", slog.String("user", cr.User), slog.String(MetaAccessKeyID, id), slog.String("version", req.VersionID))
	return nil
}

// open reads the key id and secret of a version's value, and checks the
// key id against the version's metadata.
func (p *Provider) open(c providers.Common, val secret.Value, meta map[string]string) (string, secret.Value, error) {
	format := meta[MetaFormat]
	if format == "" {
		format = p.cfg.Format
	}
	id, sk, err := parseValue(format, val)
	if err != nil {
		return "", secret.Value{}, fmt.Errorf("version %s: %w: %w", c.VersionID, providers.ErrPermanent, err)
	}
	if m := meta[MetaAccessKeyID]; m != "" && m != id {
		return "", secret.Value{}, fmt.Errorf("version %s: %w: its value holds access key %s, its metadata %s", c.VersionID, providers.ErrPermanent, id, m)
	}
	return id, sk, nil
}

// fail wraps err with what failed, keeps a cancelled context visible,
// classifies access errors as permanent, and scrubs the secret key.
func (p *Provider) fail(ctx context.Context, err error, sk secret.Value, format string, args ...any) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch", "ValidationError", "InvalidInput":
			err = fmt.Errorf("%w: %w", providers.ErrPermanent, err)
		}
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	e := fmt.Errorf("aws-iam-access-key: "+format+": %w", append(args, err)...)
	return secret.ScrubError(e, sk, p.cfg.SecretAccessKey, p.cfg.SessionToken)
}

var _ providers.Provider = (*Provider)(nil)
