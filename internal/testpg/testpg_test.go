package testpg_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/testpg"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }

func TestNewGivesAPrivateSchema(t *testing.T) {
	var first, schema string
	t.Run("inner", func(t *testing.T) {
		first = testpg.New(t)
		second := testpg.New(t)
		if first == second {
			t.Fatal("two calls returned the same URL")
		}
		u, err := url.Parse(first)
		if err != nil {
			t.Fatal(err)
		}
		schema = u.Query().Get("search_path")
		conn, err := pgx.Connect(t.Context(), first)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var got string
		if err := conn.QueryRow(t.Context(), "SELECT current_schema()").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != schema || got == "" {
			t.Errorf("current_schema() = %q, want %q", got, schema)
		}
		if _, err := conn.Exec(t.Context(), "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
	})
	// The schema is gone after the test.
	conn, err := pgx.Connect(t.Context(), first)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("schema %s survived its test", schema)
	}
}
