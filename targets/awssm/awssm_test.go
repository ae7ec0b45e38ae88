package awssm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/testaws"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/targets"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testBundle struct {
	fake *testaws.SecretsManager
	logs *testlog.Buffer
	sm   *secretsmanager.Client
}

const secretName = "mcp/github-token"

func setup(t *testing.T, cfg Config) (*Target, *testBundle) {
	t.Helper()
	b := &testBundle{fake: testaws.NewSecretsManager(t), logs: &testlog.Buffer{}}
	b.sm = b.fake.Client()
	if cfg.SecretID == "" {
		cfg.SecretID = secretName
	}
	logger := slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return New(b.sm, cfg, logger), b
}

func value(i int) secret.Value {
	return secret.NewString(fmt.Sprintf("canary-secret-value-%03d-Zq8xL2", i))
}

func common(cred, version string, v secret.Value, step string) targets.Common {
	return targets.Common{CredentialID: cred, VersionID: version, IdempotencyKey: "run-" + version + "/" + step + ":sm", Value: v}
}

func stage(t *testing.T, tg *Target, version string, v secret.Value) error {
	t.Helper()
	return tg.Stage(t.Context(), targets.StageRequest{Common: common("github-mcp-token", version, v, "stage")})
}

func promote(t *testing.T, tg *Target, version, prev string, v secret.Value) error {
	t.Helper()
	return tg.Promote(t.Context(), targets.PromoteRequest{Common: common("github-mcp-token", version, v, "promote"), PreviousVersionID: prev})
}

// read returns the SecretString under a staging label, or "" if no version has it.
func read(t *testing.T, sm *secretsmanager.Client, label string) string {
	t.Helper()
	out, err := sm.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretName), VersionStage: aws.String(label)})
	if err != nil {
		return ""
	}
	return aws.ToString(out.SecretString)
}

// seed gives the secret an AWSCURRENT version published by rotator as version "v000".
func seed(t *testing.T, tg *Target, b *testBundle) {
	t.Helper()
	b.fake.AddSecret(secretName)
	if err := promote(t, tg, "v000", "", value(0)); err != nil {
		t.Fatal(err)
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	a := Token("cred", "01J00000000000000000000000", "run/stage:sm")
	if len(a) != 36 || strings.Count(a, "-") != 4 {
		t.Fatalf("token %q is not UUID-shaped", a)
	}
	if a != Token("cred", "01J00000000000000000000000", "run/promote:sm") {
		t.Fatal("stage and promote of one version must share a token")
	}
	if a == Token("cred", "01J00000000000000000000001", "") || a == Token("other", "01J00000000000000000000000", "") {
		t.Fatal("tokens of different versions or credentials collide")
	}
	if Token("cred", "", "k1") == Token("cred", "", "k2") {
		t.Fatal("fallback keys collide")
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()

	t.Run("readers of AWSCURRENT switch atomically", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{})
		seed(t, tg, b)
		const rotations = 15
		index := map[string]int{}
		for i := 0; i <= rotations; i++ {
			index[value(i).RevealString()] = i
		}
		var promoted atomic.Int64 // highest index promoted so far
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var reads, distinct atomic.Int64
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				last := 0
				for {
					select {
					case <-stop:
						return
					default:
					}
					out, err := b.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretName)})
					// Promote(i) starts after promoted reaches i-1, so a value
					// read now is at most one ahead of what has been recorded.
					ceiling := promoted.Load()
					if err != nil {
						t.Errorf("reader: %v", err)
						return
					}
					i, ok := index[aws.ToString(out.SecretString)]
					switch {
					case !ok:
						t.Errorf("reader saw a value that is not one of the rotated ones")
						return
					case i < last:
						t.Errorf("reader went back from value %d to %d", last, i)
						return
					case int64(i) > ceiling+1:
						t.Errorf("reader saw value %d before it was promoted (promoted: %d)", i, ceiling)
						return
					}
					if i > last {
						distinct.Add(1)
					}
					last = i
					reads.Add(1)
				}
			}()
		}
		for i := 1; i <= rotations; i++ {
			v, prev := fmt.Sprintf("v%03d", i), fmt.Sprintf("v%03d", i-1)
			if err := stage(t, tg, v, value(i)); err != nil {
				t.Fatal(err)
			}
			if got := read(t, b.sm, LabelCurrent); got != value(i-1).RevealString() {
				t.Fatalf("rotation %d: after stage AWSCURRENT is not the previous value", i)
			}
			if got := read(t, b.sm, LabelPending); got != value(i).RevealString() {
				t.Fatalf("rotation %d: after stage AWSPENDING is not the new value", i)
			}
			if err := promote(t, tg, v, prev, value(i)); err != nil {
				t.Fatal(err)
			}
			promoted.Store(int64(i))
			if read(t, b.sm, LabelCurrent) != value(i).RevealString() || read(t, b.sm, LabelPrevious) != value(i-1).RevealString() {
				t.Fatalf("rotation %d: after promote AWSCURRENT/AWSPREVIOUS are not new/old", i)
			}
			if read(t, b.sm, LabelPending) != "" {
				t.Fatalf("rotation %d: AWSPENDING left behind after promote", i)
			}
		}
		close(stop)
		wg.Wait()
		if reads.Load() == 0 || distinct.Load() == 0 {
			t.Fatalf("readers made %d reads and saw %d switches; the test proved nothing", reads.Load(), distinct.Load())
		}
		if b.fake.Count("UpdateSecretVersionStage") < rotations {
			t.Fatalf("promotions used %d UpdateSecretVersionStage calls, want at least one per rotation", b.fake.Count("UpdateSecretVersionStage"))
		}
		assertNoLeak(t, b, nil, rotations)
	})

	t.Run("stage and promote twice are idempotent", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{})
		seed(t, tg, b)
		for range 2 {
			if err := stage(t, tg, "v001", value(1)); err != nil {
				t.Fatal(err)
			}
		}
		labels, n := b.fake.Labels(secretName)
		if n != 2 || labels[LabelPending] != Token("github-mcp-token", "v001", "") {
			t.Fatalf("after staging twice: %d versions, labels %v", n, labels)
		}
		for range 2 {
			if err := promote(t, tg, "v001", "v000", value(1)); err != nil {
				t.Fatal(err)
			}
		}
		// A stage retried after its promote (a crash between them) changes nothing.
		if err := stage(t, tg, "v001", value(1)); err != nil {
			t.Fatal(err)
		}
		labels, n = b.fake.Labels(secretName)
		want := map[string]string{
			LabelCurrent: Token("github-mcp-token", "v001", ""), LabelPrevious: Token("github-mcp-token", "v000", ""),
			LabelRotator: Token("github-mcp-token", "v001", ""),
		}
		if n != 2 || fmt.Sprint(labels) != fmt.Sprint(want) {
			t.Fatalf("after promoting twice: %d versions, labels %v, want %v", n, labels, want)
		}
		if got := b.fake.Count("PutSecretValue"); got != 2 {
			t.Fatalf("PutSecretValue called %d times, want 2 (seed + first stage)", got)
		}
	})

	t.Run("the same token with another value is refused", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{})
		seed(t, tg, b)
		if err := stage(t, tg, "v001", value(1)); err != nil {
			t.Fatal(err)
		}
		// Someone moved our labels away, so Stage must re-put to check the data.
		_, err := b.sm.UpdateSecretVersionStage(t.Context(), &secretsmanager.UpdateSecretVersionStageInput{
			SecretId: aws.String(secretName), VersionStage: aws.String(LabelPending), RemoveFromVersionId: aws.String(Token("github-mcp-token", "v001", "")),
		})
		if err != nil {
			t.Fatal(err)
		}
		err = stage(t, tg, "v001", value(2))
		if !errors.Is(err, targets.ErrPermanent) || !strings.Contains(err.Error(), "different value") {
			t.Fatalf("err = %v, want a permanent error about a different value", err)
		}
		assertNoLeak(t, b, err, 2)
		// The right value relabels the version.
		if err := stage(t, tg, "v001", value(1)); err != nil {
			t.Fatal(err)
		}
		if read(t, b.sm, LabelPending) != value(1).RevealString() {
			t.Fatal("AWSPENDING was not put back on the staged version")
		}
	})

	t.Run("rollback re-promotes the previous version", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{})
		seed(t, tg, b)
		if err := stage(t, tg, "v001", value(1)); err != nil {
			t.Fatal(err)
		}
		if err := promote(t, tg, "v001", "v000", value(1)); err != nil {
			t.Fatal(err)
		}
		// The engine's restore: promote the old current version again.
		if err := promote(t, tg, "v000", "", value(0)); err != nil {
			t.Fatal(err)
		}
		if read(t, b.sm, LabelCurrent) != value(0).RevealString() || read(t, b.sm, LabelPrevious) != value(1).RevealString() {
			t.Fatal("restore did not make the old value current again")
		}
		// A version AWS never saw (e.g. published before this target existed).
		if err := promote(t, tg, "v-older", "", value(7)); err != nil {
			t.Fatal(err)
		}
		if read(t, b.sm, LabelCurrent) != value(7).RevealString() {
			t.Fatal("promoting an unknown version did not write it as AWSCURRENT")
		}
	})
}

func TestForeignPending(t *testing.T) {
	t.Parallel()
	// foreign puts a version labelled AWSPENDING as another tool would.
	foreign := func(t *testing.T, b *testBundle) string {
		t.Helper()
		tok := "f0f0f0f0-aaaa-bbbb-cccc-0123456789ab"
		_, err := b.sm.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(secretName), ClientRequestToken: aws.String(tok),
			SecretString: aws.String("someone-elses-pending-value"), VersionStages: []string{LabelPending},
		})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	t.Run("fail", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{OnForeignPending: ForeignPendingFail})
		seed(t, tg, b)
		tok := foreign(t, b)
		err := stage(t, tg, "v001", value(1))
		if !errors.Is(err, ErrForeignPending) || !errors.Is(err, targets.ErrPermanent) {
			t.Fatalf("err = %v, want ErrForeignPending (permanent)", err)
		}
		if !strings.Contains(err.Error(), tok) || !strings.Contains(err.Error(), "on_foreign_pending: replace") {
			t.Fatalf("error should name the foreign version and the setting: %v", err)
		}
		labels, _ := b.fake.Labels(secretName)
		if labels[LabelPending] != tok || read(t, b.sm, LabelCurrent) != value(0).RevealString() {
			t.Fatalf("a refused stage changed the secret: %v", labels)
		}
		assertNoLeak(t, b, err, 1)
	})

	t.Run("replace", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{OnForeignPending: ForeignPendingReplace})
		seed(t, tg, b)
		foreign(t, b)
		if err := stage(t, tg, "v001", value(1)); err != nil {
			t.Fatal(err)
		}
		if read(t, b.sm, LabelPending) != value(1).RevealString() {
			t.Fatal("AWSPENDING is not on rotator's version")
		}
		if !strings.Contains(b.logs.String(), "on_foreign_pending: replace") {
			t.Fatalf("replacing a foreign AWSPENDING must be logged; logs: %s", b.logs.String())
		}
		if err := promote(t, tg, "v001", "v000", value(1)); err != nil {
			t.Fatal(err)
		}
		if read(t, b.sm, LabelCurrent) != value(1).RevealString() {
			t.Fatal("promote after replace failed")
		}
	})

	t.Run("rotator's own leftover pending is not foreign", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{OnForeignPending: ForeignPendingFail})
		seed(t, tg, b)
		// A run staged v001 and rolled back; the next run stages v002.
		if err := stage(t, tg, "v001", value(1)); err != nil {
			t.Fatal(err)
		}
		if err := stage(t, tg, "v002", value(2)); err != nil {
			t.Fatalf("a leftover AWSPENDING of rotator's blocked the next run: %v", err)
		}
		if read(t, b.sm, LabelPending) != value(2).RevealString() || read(t, b.sm, LabelCurrent) != value(0).RevealString() {
			t.Fatal("wrong labels after restaging")
		}
	})

	t.Run("a pending left on the current version is not foreign", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{OnForeignPending: ForeignPendingFail})
		b.fake.AddSecret(secretName)
		// AWS's rotation Lambdas leave AWSPENDING on the version they promoted.
		_, err := b.sm.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(secretName), ClientRequestToken: aws.String("e0e0e0e0-aaaa-bbbb-cccc-0123456789ab"),
			SecretString: aws.String("value-from-a-lambda-rotation"), VersionStages: []string{LabelCurrent, LabelPending},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := stage(t, tg, "v001", value(1)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMissingSecret(t *testing.T) {
	t.Parallel()

	t.Run("without create_if_missing", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{})
		err := stage(t, tg, "v001", value(1))
		if !errors.Is(err, ErrSecretMissing) || !errors.Is(err, targets.ErrPermanent) || !strings.Contains(err.Error(), "create_if_missing") {
			t.Fatalf("err = %v", err)
		}
		assertNoLeak(t, b, err, 1)
	})

	t.Run("create_if_missing creates at promote", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{CreateIfMissing: true})
		if err := stage(t, tg, "v001", value(1)); !errors.Is(err, targets.ErrSkipped) || !strings.Contains(err.Error(), "created with the value at promote") {
			t.Fatalf("stage of a missing secret: err = %v, want targets.ErrSkipped", err)
		}
		if _, n := b.fake.Labels(secretName); n != 0 || b.fake.Count("CreateSecret") != 0 {
			t.Fatal("stage created the secret: its first version would be AWSCURRENT before verification")
		}
		for range 2 { // the retry after a lost response finds it created
			if err := promote(t, tg, "v001", "", value(1)); err != nil {
				t.Fatal(err)
			}
		}
		if read(t, b.sm, LabelCurrent) != value(1).RevealString() {
			t.Fatal("created secret does not hold the value as AWSCURRENT")
		}
		if _, n := b.fake.Labels(secretName); n != 1 {
			t.Fatalf("%d versions, want 1", n)
		}
		// The next rotation goes through AWSPENDING as usual.
		if err := stage(t, tg, "v002", value(2)); err != nil {
			t.Fatal(err)
		}
		if err := promote(t, tg, "v002", "v001", value(2)); err != nil {
			t.Fatal(err)
		}
		if read(t, b.sm, LabelCurrent) != value(2).RevealString() || read(t, b.sm, LabelPrevious) != value(1).RevealString() {
			t.Fatal("second rotation of a created secret")
		}
	})

	t.Run("scheduled for deletion", func(t *testing.T) {
		t.Parallel()
		tg, b := setup(t, Config{CreateIfMissing: true})
		b.fake.AddSecret(secretName)
		b.fake.MarkDeleted(secretName)
		err := stage(t, tg, "v001", value(1))
		if !errors.Is(err, targets.ErrPermanent) || !strings.Contains(err.Error(), "scheduled for deletion") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestNoSecretInErrors(t *testing.T) {
	t.Parallel()
	tg, b := setup(t, Config{})
	seed(t, tg, b)
	b.fake.SetEchoValue(true)
	err := stage(t, tg, "v001", value(1))
	if err == nil {
		t.Fatal("stage succeeded against a failing service")
	}
	var apiErr interface{ ErrorCode() string }
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InternalServiceError" {
		t.Fatalf("the AWS error is not in the chain: %v", err)
	}
	if !strings.Contains(err.Error(), secret.Redacted) {
		t.Fatalf("err = %v, want the echoed value redacted", err)
	}
	assertNoLeak(t, b, err, 1)
}

// assertNoLeak checks that no value up to index n appears in err or the logs.
func assertNoLeak(t *testing.T, b *testBundle, err error, n int) {
	t.Helper()
	logs := b.logs.String()
	for i := 0; i <= n; i++ {
		v := value(i).RevealString()
		if err != nil && strings.Contains(err.Error(), v) {
			t.Errorf("error contains secret value %d: %v", i, err)
		}
		if strings.Contains(logs, v) {
			t.Errorf("logs contain secret value %d", i)
		}
	}
}

func TestFactory(t *testing.T) {
	t.Parallel()
	fake := testaws.NewSecretsManager(t)
	fake.AddSecret(secretName)
	env := targets.Env{Name: "sm-github", Settings: settings.Map{
		"secret_id": secretName, "region": "us-east-1", "endpoint": fake.URL(),
		"access_key_id": secret.NewString("AKIDFAKE"), "secret_access_key": secret.NewString("fake-secret-access-key"),
	}}
	tg, err := Factory().New(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	req := targets.Common{CredentialID: "c", VersionID: "v1", IdempotencyKey: "r/stage:sm-github", Value: value(1)}
	if err := tg.Stage(t.Context(), targets.StageRequest{Common: req}); err != nil {
		t.Fatal(err)
	}
	if err := tg.Promote(t.Context(), targets.PromoteRequest{Common: req}); err != nil {
		t.Fatal(err)
	}
	if got, _ := fake.Labels(secretName); got[LabelCurrent] != Token("c", "v1", "") {
		t.Fatalf("labels %v", got)
	}
	bad := env
	bad.Settings = settings.Map{"region": "us-east-1"}
	if _, err := Factory().New(t.Context(), bad); !errors.Is(err, targets.ErrPermanent) {
		t.Fatalf("New without secret_id: %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		in     settings.Map
		fields []string
	}{
		"minimal": {settings.Map{"secret_id": "mcp/x"}, nil},
		"full": {settings.Map{
			"secret_id": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:mcp/x-AbCdEf", "region": "eu-central-1",
			"endpoint": "http://localhost:4566", "create_if_missing": true, "on_foreign_pending": "replace", "kms_key_id": "alias/mcp",
			"access_key_id": "${env:AWS_ACCESS_KEY_ID}", "secret_access_key": "${env:AWS_SECRET_ACCESS_KEY}", "session_token": "${env:AWS_SESSION_TOKEN}",
		}, nil},
		"missing secret_id":  {settings.Map{"region": "us-east-1"}, []string{"secret_id"}},
		"bad endpoint":       {settings.Map{"secret_id": "x", "endpoint": "localhost:4566"}, []string{"endpoint"}},
		"bad foreign policy": {settings.Map{"secret_id": "x", "on_foreign_pending": "ignore"}, []string{"on_foreign_pending"}},
		"half credentials":   {settings.Map{"secret_id": "x", "access_key_id": "${env:A}"}, []string{"secret_access_key"}},
		"token alone":        {settings.Map{"secret_id": "x", "session_token": "${env:T}"}, []string{"session_token"}},
		"create not bool":    {settings.Map{"secret_id": "x", "create_if_missing": "yes"}, []string{"create_if_missing"}},
		"unknown":            {settings.Map{"secret_id": "x", "colour": "red"}, []string{"colour"}},
	}
	for name, tc := range cases {
		var got []string
		for _, e := range Validate(tc.in) {
			got = append(got, e.Field)
		}
		if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("%s: error fields %v, want %v", name, got, tc.fields)
		}
	}
	if ValidateKey("") != nil || ValidateKey("GITHUB_TOKEN") == nil {
		t.Error("ValidateKey must accept no key and refuse a key")
	}
}

func TestRotationEnabledWarns(t *testing.T) {
	t.Parallel()
	tg, b := setup(t, Config{})
	seed(t, tg, b)
	b.fake.SetRotation(secretName, true)
	if err := stage(t, tg, "v001", value(1)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.logs.String(), "AWS-managed rotation enabled") {
		t.Fatal("no warning about AWS-managed rotation")
	}
}
