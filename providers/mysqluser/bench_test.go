package mysqluser

import (
	"fmt"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/providers"
)

// BenchmarkRotation measures one rotation of one credential against the
// local MariaDB: mint, activate, verify (a new login) and revoke of the
// previous version, as the engine calls them, over the pooled admin
// connections; each step's mean is reported as ms-<step>/op.
func BenchmarkRotation(b *testing.B) {
	for _, strategy := range []string{StrategyAlternating, StrategySingle} {
		b.Run(strategy, func(b *testing.B) {
			e := newBenchEnv(b, strategy)
			p, err := New(Config{AdminDSN: benchDSN(), Strategy: strategy}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			cred := e.cred()
			var cur *providers.VersionRef
			var steps [4]time.Duration
			lap := func(i int, start time.Time) { steps[i] += time.Since(start) }
			b.ResetTimer()
			for n := range b.N {
				ver := fmt.Sprintf("v%d", n)
				c := providers.Common{CredentialID: "bench", VersionID: ver, Settings: cred}
				start := time.Now()
				m, err := p.Mint(b.Context(), providers.MintRequest{Common: c, Current: cur})
				if err != nil {
					b.Fatal(err)
				}
				lap(0, start)
				start = time.Now()
				if _, err := p.Activate(b.Context(), providers.ActivateRequest{Common: c, Value: m.Value, Metadata: m.Metadata}); err != nil {
					b.Fatal(err)
				}
				lap(1, start)
				start = time.Now()
				if _, err := p.Verify(b.Context(), providers.VerifyRequest{Common: c, Value: m.Value, Metadata: m.Metadata}); err != nil {
					b.Fatal(err)
				}
				lap(2, start)
				start = time.Now()
				if cur != nil {
					if err := p.Revoke(b.Context(), providers.RevokeRequest{Common: c, Value: cur.Value, Metadata: cur.Metadata}); err != nil {
						b.Fatal(err)
					}
				}
				lap(3, start)
				cur = &providers.VersionRef{VersionID: ver, Value: m.Value, Metadata: m.Metadata}
			}
			for i, name := range []string{"mint", "activate", "verify", "revoke"} {
				b.ReportMetric(float64(steps[i].Microseconds())/float64(b.N)/1000, "ms-"+name+"/op")
			}
		})
	}
}

func newBenchEnv(b *testing.B, strategy string) *env {
	b.Helper()
	e := &env{name: "rtr_" + randomHex(5)}
	db := ident(e.name)
	adminExec(b, "CREATE DATABASE "+db, "CREATE TABLE "+db+".items (id int)")
	if strategy == StrategySingle {
		adminExec(b, "CREATE USER "+account(e.name, "%")+" ACCOUNT LOCK", "GRANT SELECT ON "+db+".* TO "+account(e.name, "%"))
	} else {
		adminExec(b, "CREATE ROLE "+ident(e.name), "GRANT SELECT ON "+db+".* TO "+ident(e.name))
	}
	b.Cleanup(func() {
		adminExec(b, "DROP USER IF EXISTS "+account(e.name+"_a", "%"), "DROP USER IF EXISTS "+account(e.name+"_b", "%"),
			"DROP USER IF EXISTS "+account(e.name, "%"), "DROP ROLE IF EXISTS "+ident(e.name), "DROP DATABASE IF EXISTS "+db)
	})
	return e
}

func benchDSN() secret.Value { return secret.NewString(adminDSN()) }
