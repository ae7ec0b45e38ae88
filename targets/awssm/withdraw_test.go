package awssm

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/targets"
)

func withdraw(t *testing.T, tg *Target, versions []string, others ...targets.Binding) (targets.WithdrawResponse, error) {
	t.Helper()
	return tg.Withdraw(t.Context(), targets.WithdrawRequest{
		Common:     targets.Common{CredentialID: "github-mcp-token", VersionID: versions[0], IdempotencyKey: "apply/withdraw:sm"},
		VersionIDs: versions,
		Others:     others,
	})
}

func TestWithdraw(t *testing.T) {
	t.Parallel()

	t.Run("schedules the deletion of a secret rotator published", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{RecoveryWindowDays: 7})
		seed(t, tg, b)
		if err := stage(t, tg, "v001", value(1)); err != nil {
			t.Fatal(err)
		}
		if err := promote(t, tg, "v001", "v000", value(1)); err != nil {
			t.Fatal(err)
		}
		resp, err := withdraw(t, tg, []string{"v001", "v000"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(resp.Detail, "scheduled secret "+secretName+" for deletion") || !strings.Contains(resp.Detail, "restore-secret") {
			t.Errorf("detail %q", resp.Detail)
		}
		deleted, days := b.fake.Deleted(secretName)
		if !deleted || days != 7 {
			t.Fatalf("secret deleted=%t with recovery window %d days, want deleted with 7", deleted, days)
		}
		// Readers no longer get the value.
		if _, err := b.sm.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretName)}); err == nil {
			t.Fatal("the value is still readable after withdraw")
		}
		// Again: already scheduled is success, and nothing more is deleted.
		resp, err = withdraw(t, tg, []string{"v001", "v000"})
		if err != nil || !strings.Contains(resp.Detail, "already scheduled for deletion") {
			t.Fatalf("second withdraw: %q, %v", resp.Detail, err)
		}
		if n := b.fake.Count("DeleteSecret"); n != 1 {
			t.Errorf("DeleteSecret called %d times, want 1", n)
		}
		assertNoLeak(t, b, err, 1)
	})

	t.Run("a missing secret is already withdrawn", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{})
		resp, err := withdraw(t, tg, []string{"v001"})
		if err != nil || !strings.Contains(resp.Detail, "already absent") {
			t.Fatalf("withdraw: %q, %v", resp.Detail, err)
		}
		if b.fake.Count("DeleteSecret") != 0 {
			t.Error("DeleteSecret called for a missing secret")
		}
	})

	t.Run("a secret holding another party's value is not deleted", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{})
		seed(t, tg, b)
		// Someone else put a new current value in since.
		if _, err := b.sm.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(secretName), ClientRequestToken: aws.String("11111111-2222-3333-4444-555555555555"),
			SecretString: aws.String("value-from-another-tool"), VersionStages: []string{LabelCurrent},
		}); err != nil {
			t.Fatal(err)
		}
		_, err := withdraw(t, tg, []string{"v000"})
		if !errors.Is(err, targets.ErrPermanent) || !strings.Contains(err.Error(), "was not published by rotator for credential github-mcp-token") ||
			!strings.Contains(err.Error(), "aws secretsmanager delete-secret") {
			t.Fatalf("err = %v", err)
		}
		if b.fake.Count("DeleteSecret") != 0 {
			t.Fatal("deleted a secret whose current value rotator did not publish")
		}
	})

	t.Run("a secret another credential publishes to is left in place", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{})
		seed(t, tg, b)
		_, err := withdraw(t, tg, []string{"v000"}, targets.Binding{CredentialID: "other-token"})
		if !errors.Is(err, targets.ErrSkipped) || !strings.Contains(err.Error(), "other-token") {
			t.Fatalf("err = %v, want targets.ErrSkipped naming other-token", err)
		}
		if b.fake.Count("DeleteSecret") != 0 {
			t.Fatal("deleted a shared secret")
		}
	})
}

func TestRecoveryWindowSetting(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		v    any
		want int
		bad  bool
	}{
		"default": {nil, DefaultRecoveryWindowDays, false},
		"7":       {7, 7, false},
		"30":      {30, 30, false},
		"6":       {6, 0, true},
		"31":      {31, 0, true},
	}
	for name, tc := range cases {
		s := settings.Map{"secret_id": "x"}
		if tc.v != nil {
			s["recovery_window_days"] = tc.v
		}
		cfg, errs := parse(s)
		if got := len(errs) > 0; got != tc.bad {
			t.Errorf("%s: errors %v, want bad=%t", name, errs, tc.bad)
			continue
		}
		if !tc.bad && cfg.RecoveryWindowDays != tc.want {
			t.Errorf("%s: recovery window %d, want %d", name, cfg.RecoveryWindowDays, tc.want)
		}
	}
}
