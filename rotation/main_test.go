package rotation_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/testpg"
	"github.com/rotatorhq/rotator/providers/faulty"
)

func TestMain(m *testing.M) {
	// The faulty provider refuses to work without it; setting it here (not
	// with t.Setenv) keeps the engine tests parallel.
	if err := os.Setenv(faulty.EnableEnv, "1"); err != nil {
		panic(err)
	}
	goleak.VerifyTestMain(testpg.M(m))
}
