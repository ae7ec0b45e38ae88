package awssm

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/targets"
)

// Probe implements targets.Prober with DescribeSecret, a read: it proves
// that the endpoint is reachable, that the credentials are accepted and
// may describe the secret, and that the secret exists (or may be created,
// with create_if_missing). The write permissions rotation needs
// (PutSecretValue, UpdateSecretVersionStage) cannot be proven without
// writing.
func (t *Target) Probe(ctx context.Context, _ targets.ProbeRequest) (targets.ProbeResponse, error) {
	var none secret.Value
	out, err := t.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(t.cfg.SecretID)})
	unproven := []string{"that these credentials may write the secret (secretsmanager:PutSecretValue and UpdateSecretVersionStage; proven by the first rotation)"}
	var nf *types.ResourceNotFoundException
	var api smithy.APIError
	switch {
	case errors.As(err, &nf) && t.cfg.CreateIfMissing:
		return targets.ProbeResponse{
			Checked:  []string{fmt.Sprintf("Secrets Manager answered: secret %s does not exist yet; create_if_missing creates it at the first promotion", t.cfg.SecretID)},
			Unproven: append(unproven, "secretsmanager:CreateSecret"),
		}, nil
	case errors.As(err, &nf):
		return targets.ProbeResponse{}, targets.NewProbeError(t.fail(none, fmt.Errorf("%w: the secret does not exist", targets.ErrPermanent), ""),
			"create the secret, correct secret_id, or set create_if_missing: true")
	case errors.As(err, &api) && (api.ErrorCode() == "AccessDeniedException"):
		return targets.ProbeResponse{}, targets.NewProbeError(t.fail(none, err, "DescribeSecret"),
			"grant these credentials secretsmanager:DescribeSecret, GetSecretValue, PutSecretValue and UpdateSecretVersionStage on the secret")
	case errors.As(err, &api) && (api.ErrorCode() == "UnrecognizedClientException" || api.ErrorCode() == "InvalidSignatureException"):
		return targets.ProbeResponse{}, targets.NewProbeError(t.fail(none, err, "DescribeSecret"),
			"AWS refused the credentials: correct access_key_id/secret_access_key (or the credential chain of this host)")
	case err != nil:
		return targets.ProbeResponse{}, targets.NewProbeError(t.fail(none, err, "DescribeSecret"),
			"check region, endpoint and that Secrets Manager is reachable from this host")
	case out.DeletedDate != nil:
		return targets.ProbeResponse{}, targets.NewProbeError(t.fail(none, targets.ErrPermanent, "the secret is scheduled for deletion"),
			"restore it (aws secretsmanager restore-secret) or point secret_id at another secret")
	}
	return targets.ProbeResponse{
		Checked:  []string{fmt.Sprintf("described secret %s (%d version(s))", t.cfg.SecretID, len(out.VersionIdsToStages))},
		Unproven: unproven,
	}, nil
}

var _ targets.Prober = (*Target)(nil)
