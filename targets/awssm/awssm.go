// Package awssm is the target that publishes credential values into AWS
// Secrets Manager with its staging labels, as AWS's own rotation does:
// Stage writes a new version labelled AWSPENDING, which readers of the
// current value (AWSCURRENT, the default of GetSecretValue) do not see;
// Promote moves AWSCURRENT onto it in one UpdateSecretVersionStage call, so
// every reader switches atomically, and Secrets Manager moves AWSPREVIOUS to
// the version that was current.
//
// Versions are identified by a ClientRequestToken derived from the rotator
// version id, so every step can run again after a crash: PutSecretValue
// with the same token and value is a no-op at AWS, and a label already
// where it should be is left alone.
package awssm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/targets"
)

// Type is the target type name.
const Type = "aws-secretsmanager"

// Staging labels.
const (
	// LabelCurrent marks the version readers get by default.
	LabelCurrent = "AWSCURRENT"
	// LabelPending marks a version being rotated in.
	LabelPending = "AWSPENDING"
	// LabelPrevious marks the version that was current before the last
	// move of AWSCURRENT; Secrets Manager maintains it.
	LabelPrevious = "AWSPREVIOUS"
	// LabelRotator marks the version rotator staged last. It tells
	// rotator's own leftover AWSPENDING (a rolled-back run) apart from
	// another party's rotation in progress.
	LabelRotator = "rotator-staged"
)

var (
	// ErrForeignPending is returned by Stage when another party's version
	// holds AWSPENDING and on_foreign_pending is fail.
	ErrForeignPending = errors.New("another version of the secret is already AWSPENDING")
	// ErrSecretMissing is returned when the secret does not exist and
	// create_if_missing is false.
	ErrSecretMissing = errors.New("secret does not exist")

	errKeyed = errors.New("aws-secretsmanager holds one credential per secret, so a binding takes no key; give each credential its own target (secret_id)")
)

// Factory returns the registry entry of the aws-secretsmanager target.
func Factory() targets.Factory {
	return targets.Factory{
		Description: "AWS Secrets Manager: stage as AWSPENDING, promote by moving AWSCURRENT (AWSPREVIOUS follows)",
		Validate:    Validate,
		ValidateKey: ValidateKey,
		New: func(ctx context.Context, env targets.Env) (targets.Target, error) {
			cfg, errs := parse(env.Settings)
			if len(errs) > 0 {
				return nil, fmt.Errorf("aws-secretsmanager: %w: %w", targets.ErrPermanent, errs[0])
			}
			client, err := sharedClients.client(ctx, cfg)
			if err != nil {
				return nil, fmt.Errorf("aws-secretsmanager: %w", err)
			}
			return New(client, cfg, env.Logger), nil
		},
	}
}

// NewClient builds a Secrets Manager client from the standard AWS
// configuration chain, overridden by cfg's region, endpoint and static
// credentials where given. The factory shares one client among targets
// with the same region, endpoint and credentials (clients.go).
func NewClient(ctx context.Context, cfg Config) (*secretsmanager.Client, error) {
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
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("%w: no AWS region: set region in the target or AWS_REGION", targets.ErrPermanent)
	}
	return secretsmanager.NewFromConfig(awsCfg, func(o *secretsmanager.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	}), nil
}

// Target publishes values into one secret.
type Target struct {
	sm  *secretsmanager.Client
	cfg Config
	log *slog.Logger
}

// New returns a target that talks to Secrets Manager through client.
func New(client *secretsmanager.Client, cfg Config, logger *slog.Logger) *Target {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnForeignPending == "" {
		cfg.OnForeignPending = ForeignPendingFail
	}
	return &Target{sm: client, cfg: cfg, log: logger.With(slog.String("secret_id", cfg.SecretID))}
}

// Token returns the ClientRequestToken (the AWS version id) under which the
// version versionID of credentialID is published: a UUID-shaped hash, 36
// characters, as AWS recommends. It is the same at Stage and at Promote and
// at every retry of either, which is what makes both idempotent. (The
// engine's idempotency keys name the run and step, and so differ between
// Stage and Promote, and a rollback re-promotes a version staged by an
// earlier run; the version id is the key both steps share.) When versionID
// is empty, fallback (the step's idempotency key) is hashed instead.
func Token(credentialID, versionID, fallback string) string {
	src := "rotator/v1\x00" + credentialID + "\x00" + versionID
	if versionID == "" {
		src = "rotator/v1/key\x00" + credentialID + "\x00" + fallback
	}
	sum := sha256.Sum256([]byte(src))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// state is what DescribeSecret says about the secret's versions.
type state struct {
	exists   bool
	versions map[string][]string // version id -> staging labels
	rotation bool                // AWS-managed rotation is enabled
}

func (s state) holder(label string) string {
	for id, labels := range s.versions {
		if slices.Contains(labels, label) {
			return id
		}
	}
	return ""
}

func (s state) has(id, label string) bool { return slices.Contains(s.versions[id], label) }

func (t *Target) describe(ctx context.Context, val secret.Value) (state, error) {
	out, err := t.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(t.cfg.SecretID)})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return state{}, nil
	}
	if err != nil {
		return state{}, t.fail(val, err, "describing the secret")
	}
	if out.DeletedDate != nil {
		return state{}, t.fail(val, targets.ErrPermanent, "the secret is scheduled for deletion; restore it (aws secretsmanager restore-secret) or point secret_id at another secret")
	}
	st := state{exists: true, versions: out.VersionIdsToStages, rotation: aws.ToBool(out.RotationEnabled)}
	if st.versions == nil {
		st.versions = map[string][]string{}
	}
	return st, nil
}

// Stage implements targets.Target: it stores the value as a new version
// labelled AWSPENDING (and rotator-staged). A secret that does not exist
// yet is created at Promote, so that its first version, which Secrets
// Manager always makes AWSCURRENT, is never a value that verification may
// still reject.
func (t *Target) Stage(ctx context.Context, req targets.StageRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if req.Value.IsZero() {
		return fmt.Errorf("aws-secretsmanager %s: %w: nothing to stage (empty value)", t.cfg.SecretID, targets.ErrPermanent)
	}
	token := Token(req.CredentialID, req.VersionID, req.IdempotencyKey)
	st, err := t.describe(ctx, req.Value)
	if err != nil {
		return err
	}
	if !st.exists {
		if t.cfg.CreateIfMissing {
			return fmt.Errorf("%w: secret %s does not exist yet; it is created with the value at promote (create_if_missing)", targets.ErrSkipped, t.cfg.SecretID)
		}
		return t.fail(req.Value, fmt.Errorf("%w: %w", targets.ErrPermanent, ErrSecretMissing), "staging: create it or set create_if_missing: true")
	}
	if st.rotation {
		t.log.Warn("the secret has AWS-managed rotation enabled; it will fight with rotator over AWSPENDING and AWSCURRENT; disable one of them")
	}
	if st.has(token, LabelPending) || st.has(token, LabelCurrent) {
		return nil // staged (or even promoted) by an earlier attempt
	}
	if p := st.holder(LabelPending); p != "" && p != token && !st.has(p, LabelCurrent) && !st.has(p, LabelRotator) {
		if t.cfg.OnForeignPending != ForeignPendingReplace {
			return t.fail(req.Value, fmt.Errorf("%w: %w", targets.ErrPermanent, ErrForeignPending),
				"staging: version %s holds AWSPENDING and was not staged by rotator (an AWS rotation Lambda or another tool is rotating this secret); finish or cancel that rotation, or set on_foreign_pending: replace", p)
		}
		t.log.Warn("moving AWSPENDING away from a version rotator did not stage (on_foreign_pending: replace)", slog.String("foreign_version", p))
	}
	if _, existed := st.versions[token]; !existed {
		_, err = t.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId:           aws.String(t.cfg.SecretID),
			ClientRequestToken: aws.String(token),
			SecretString:       aws.String(req.Value.RevealString()),
			VersionStages:      []string{LabelPending, LabelRotator},
		})
		if err != nil {
			return t.putError(req.Value, err, "staging")
		}
		return nil
	}
	// Our version exists without its labels (someone moved them): check it
	// holds this value (same token, same data is a no-op) and relabel it.
	if _, err := t.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(t.cfg.SecretID),
		ClientRequestToken: aws.String(token),
		SecretString:       aws.String(req.Value.RevealString()),
		VersionStages:      []string{LabelPending, LabelRotator},
	}); err != nil {
		return t.putError(req.Value, err, "staging")
	}
	for _, label := range []string{LabelPending, LabelRotator} {
		if err := t.move(ctx, req.Value, label, token, st.holder(label)); err != nil {
			return err
		}
	}
	return nil
}

// Promote implements targets.Target: it moves AWSCURRENT to the version of
// req.VersionID with one UpdateSecretVersionStage call naming the version
// it is removed from, so readers switch atomically and AWSPREVIOUS follows.
// A version that was never staged here (the secret was missing, or a
// rollback re-promotes a version AWS no longer keeps) is written directly
// as AWSCURRENT.
func (t *Target) Promote(ctx context.Context, req targets.PromoteRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if req.Value.IsZero() {
		return fmt.Errorf("aws-secretsmanager %s: %w: nothing to promote (empty value)", t.cfg.SecretID, targets.ErrPermanent)
	}
	token := Token(req.CredentialID, req.VersionID, req.IdempotencyKey)
	st, err := t.describe(ctx, req.Value)
	if err != nil {
		return err
	}
	if !st.exists {
		if !t.cfg.CreateIfMissing {
			return t.fail(req.Value, fmt.Errorf("%w: %w", targets.ErrPermanent, ErrSecretMissing), "promoting: create it or set create_if_missing: true")
		}
		created, err := t.create(ctx, req, token)
		if err != nil || created {
			return err
		}
		if st, err = t.describe(ctx, req.Value); err != nil {
			return err
		}
	}
	if _, ok := st.versions[token]; !ok {
		_, err := t.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId:           aws.String(t.cfg.SecretID),
			ClientRequestToken: aws.String(token),
			SecretString:       aws.String(req.Value.RevealString()),
			VersionStages:      []string{LabelCurrent},
		})
		if err != nil {
			return t.putError(req.Value, err, "promoting")
		}
		return nil
	}
	if !st.has(token, LabelCurrent) {
		if err := t.move(ctx, req.Value, LabelCurrent, token, st.holder(LabelCurrent)); err != nil {
			return err
		}
	}
	if st.has(token, LabelPending) {
		// The rotation is complete: leave no AWSPENDING behind, so that the
		// next stage (ours or another tool's) starts from a clean secret.
		// Consumers read AWSCURRENT, so a failure here is only logged.
		_, err := t.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(t.cfg.SecretID), VersionStage: aws.String(LabelPending), RemoveFromVersionId: aws.String(token),
		})
		if err != nil {
			t.log.Warn("removing AWSPENDING from the promoted version failed", slog.String("error", t.fail(req.Value, err, "").Error()))
		}
	}
	return nil
}

// create creates the missing secret with the value as its first version
// (AWSCURRENT). created is false when someone else created it first.
func (t *Target) create(ctx context.Context, req targets.PromoteRequest, token string) (created bool, err error) {
	in := &secretsmanager.CreateSecretInput{
		Name:               aws.String(t.cfg.SecretID),
		ClientRequestToken: aws.String(token),
		SecretString:       aws.String(req.Value.RevealString()),
		Description:        aws.String("Managed by rotator: credential " + req.CredentialID + ". Do not edit by hand; rotations overwrite it."),
	}
	if t.cfg.KMSKeyID != "" {
		in.KmsKeyId = aws.String(t.cfg.KMSKeyID)
	}
	_, err = t.sm.CreateSecret(ctx, in)
	var exists *types.ResourceExistsException
	switch {
	case err == nil:
		t.log.Info("created the secret", slog.String("credential", req.CredentialID))
		return true, nil
	case errors.As(err, &exists):
		return false, nil // a retry of ours, or a concurrent creator: promote into it
	}
	var invalid *types.InvalidRequestException
	if errors.As(err, &invalid) {
		err = fmt.Errorf("%w: %w", targets.ErrPermanent, err)
	}
	return false, t.fail(req.Value, err, "creating the secret")
}

// move attaches label to version to, removing it from version from (the
// version that holds it now, if any) in the same call.
func (t *Target) move(ctx context.Context, val secret.Value, label, to, from string) error {
	in := &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(t.cfg.SecretID), VersionStage: aws.String(label), MoveToVersionId: aws.String(to),
	}
	if from != "" && from != to {
		in.RemoveFromVersionId = aws.String(from)
	}
	if _, err := t.sm.UpdateSecretVersionStage(ctx, in); err != nil {
		return t.fail(val, err, "moving %s to version %s", label, to)
	}
	return nil
}

func (t *Target) putError(val secret.Value, err error, step string) error {
	var exists *types.ResourceExistsException
	if errors.As(err, &exists) {
		// Same token, different data: never happens for a version id that
		// rotator minted once; retrying cannot fix it.
		return t.fail(val, fmt.Errorf("%w: %w", targets.ErrPermanent, err), "%s: the secret already has a version with this version's token but a different value", step)
	}
	var invalid *types.InvalidRequestException
	if errors.As(err, &invalid) {
		err = fmt.Errorf("%w: %w", targets.ErrPermanent, err)
	}
	return t.fail(val, err, "%s: put secret value", step)
}

// fail wraps err with context and the secret id, classifies access errors
// as permanent, and removes the value from the message (AWS does not echo
// secret data, but no error of ours relies on that).
func (t *Target) fail(val secret.Value, err error, format string, args ...any) error {
	var api smithy.APIError
	if errors.As(err, &api) && !errors.Is(err, targets.ErrPermanent) {
		switch api.ErrorCode() {
		case "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException", "ValidationException":
			err = fmt.Errorf("%w: %w", targets.ErrPermanent, err)
		}
	}
	what := fmt.Sprintf(format, args...)
	if what != "" {
		what = ": " + what
	}
	e := fmt.Errorf("aws-secretsmanager %s%s: %w", t.cfg.SecretID, what, err)
	return secret.ScrubError(e, val)
}

var _ targets.Target = (*Target)(nil)
