package testpg

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestDropOrphans(t *testing.T) {
	// A pid that has been and gone: a child this test started and reaped.
	child := exec.Command("true")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	dead := child.Process.Pid
	orphan := fmt.Sprintf("rotator_test_%d_%s", dead, randomHex(4))
	live := fmt.Sprintf("rotator_test_%d_%s", os.Getpid(), randomHex(4))
	admin := ServerURL()
	for _, name := range []string{orphan, live} {
		if err := adminExec(admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = adminExec(admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		})
	}

	dropOrphans(admin)

	conn, err := pgx.Connect(t.Context(), admin)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	exists := func(name string) bool {
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if exists(orphan) {
		t.Errorf("%s (creator pid %d has exited) survived", orphan, dead)
	}
	if !exists(live) {
		t.Errorf("%s (creator pid %d, this process) was dropped", live, os.Getpid())
	}
	current.Lock()
	mine := current.url
	current.Unlock()
	if c, err := pgx.Connect(t.Context(), mine); err != nil {
		t.Errorf("this binary's own database is gone: %v", err)
	} else {
		_ = c.Close(context.Background())
	}
}
