package delivery_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
	"github.com/rotatorhq/rotator/internal/testpg"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }

func TestLocal(t *testing.T) {
	t.Parallel()
	deliverytest.ForEachDialect(t, func(t *testing.T, dialect string) {
		deliverytest.Exercise(t, func(t *testing.T) deliverytest.Bundle {
			f := deliverytest.NewFixture(t, deliverytest.OpenStore(t, dialect))
			src, err := delivery.NewLocal(delivery.LocalOptions{Store: f.Store, Keyring: f.Keyring, Reader: "uid:1000 (alice)", Poll: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = src.Close() })
			return deliverytest.Bundle{Source: src, Fixture: f, Reader: "uid:1000 (alice)", Via: "local"}
		})
	})
}
