package awssm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/targets"
)

// Withdraw implements targets.Withdrawer for a credential removed from the
// inventory. Secrets Manager cannot take AWSCURRENT off a secret, so the
// only way to stop readers from getting the value is to delete the secret:
// Withdraw schedules its deletion (DeleteSecret) with a recovery window of
// recovery_window_days (default 30), during which nothing can read it and
// `aws secretsmanager restore-secret` brings it back whole. It never deletes
// without recovery.
//
// It deletes only a secret whose AWSCURRENT version rotator published for
// this credential (its ClientRequestToken is Token of one of req.VersionIDs);
// a secret that holds another party's value, or that another credential
// bound to this target publishes to, is left alone. A secret that does not
// exist or is already scheduled for deletion is success.
func (t *Target) Withdraw(ctx context.Context, req targets.WithdrawRequest) (targets.WithdrawResponse, error) {
	if err := ctx.Err(); err != nil {
		return targets.WithdrawResponse{}, err
	}
	id := t.cfg.SecretID
	if len(req.Others) > 0 {
		return targets.WithdrawResponse{}, fmt.Errorf("%w: credential %s also publishes to secret %s; left in place", targets.ErrSkipped, req.Others[0].CredentialID, id)
	}
	out, err := t.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if _, missing := errors.AsType[*types.ResourceNotFoundException](err); missing {
		return targets.WithdrawResponse{Detail: fmt.Sprintf("secret %s was already absent", id)}, nil
	}
	if err != nil {
		return targets.WithdrawResponse{}, t.fail(secret.Value{}, err, "withdrawing: describing the secret")
	}
	if out.DeletedDate != nil {
		return targets.WithdrawResponse{Detail: fmt.Sprintf("secret %s was already scheduled for deletion", id)}, nil
	}
	current := state{versions: out.VersionIdsToStages}.holder(LabelCurrent)
	if !slices.ContainsFunc(req.VersionIDs, func(v string) bool { return Token(req.CredentialID, v, "") == current }) {
		return targets.WithdrawResponse{}, t.fail(secret.Value{}, targets.ErrPermanent,
			"withdrawing: its AWSCURRENT version %s was not published by rotator for credential %s, so it is not deleted; delete the secret yourself if it should go (aws secretsmanager delete-secret --secret-id %s --recovery-window-in-days %d)",
			current, req.CredentialID, id, t.cfg.RecoveryWindowDays)
	}
	days := int64(t.cfg.RecoveryWindowDays)
	if days == 0 {
		days = DefaultRecoveryWindowDays
	}
	del, err := t.sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(id), RecoveryWindowInDays: aws.Int64(days)})
	if err != nil {
		return targets.WithdrawResponse{}, t.fail(secret.Value{}, err, "withdrawing: delete secret")
	}
	when := fmt.Sprintf("in %d days", days)
	if del.DeletionDate != nil {
		when = "on " + del.DeletionDate.UTC().Format(time.RFC3339)
	}
	t.log.Info("scheduled the secret for deletion: its credential was removed from the inventory",
		slog.String("credential", req.CredentialID), slog.Int64("recovery_window_days", days))
	return targets.WithdrawResponse{Detail: fmt.Sprintf("scheduled secret %s for deletion %s; until then `aws secretsmanager restore-secret --secret-id %s` restores it", id, when, id)}, nil
}

var _ targets.Withdrawer = (*Target)(nil)
