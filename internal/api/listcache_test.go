package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
	"github.com/rotatorhq/rotator/internal/store"
)

// TestCredentialListFollowsOtherWriters lists credentials (which fills the
// service's list cache on Postgres), then changes them through another
// handle on the database, as another replica or the CLI with the service
// running would: a rotation, a new expiry and granted scope of a current
// version (no write to the credential's row), new labels, a deletion. Each
// following list shows the change, and each is byte for byte what a
// server with nothing cached lists at the same time.
func TestCredentialListFollowsOtherWriters(t *testing.T) {
	t.Parallel()
	deliverytest.ForEachDialect(t, func(t *testing.T, dialect string) {
		b := newBundle(t, dialect, nil)
		b.now.Store(time.Now().UnixMicro())
		read := token(t, b, "reader", "read")
		other := b.f.Elsewhere(t)
		type listedCred struct {
			ID             string            `json:"id"`
			Labels         map[string]string `json:"labels"`
			GrantedScope   []string          `json:"granted_scope"`
			CurrentVersion *struct {
				ID        string     `json:"id"`
				ExpiresAt *time.Time `json:"expires_at"`
			} `json:"current_version"`
		}
		// list lists every credential through b's server, and through a
		// new server with an empty cache over the same store, and checks
		// that both say the same.
		list := func(what string) map[string]listedCred {
			t.Helper()
			r := do(t, b, "GET", "/v1/credentials?limit=2", read, "")
			r2 := do(t, b, "GET", "/v1/credentials?limit=100", read, "")
			fresh, err := api.New(api.Options{Store: b.f.Store, Keyring: b.f.Keyring, Tokens: b.tokens, Now: b.clock})
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			hs := httptest.NewServer(fresh.TCPHandler())
			defer hs.Close()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, hs.URL+"/v1/credentials?limit=100", nil)
			req.Header.Set("Authorization", "Bearer "+read)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var want struct {
				Credentials []json.RawMessage `json:"credentials"`
			}
			err = json.NewDecoder(resp.Body).Decode(&want)
			resp.Body.Close()
			var got struct {
				Credentials []json.RawMessage `json:"credentials"`
			}
			if err != nil || r.code != http.StatusOK || r2.code != http.StatusOK || json.Unmarshal([]byte(r2.body), &got) != nil {
				t.Fatalf("%s: GET /v1/credentials: %d, %d, %v", what, r.code, r2.code, err)
			}
			if !slices.EqualFunc(got.Credentials, want.Credentials, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
				t.Fatalf("%s: the server that listed before lists\n%s\na new server lists\n%s", what, got.Credentials, want.Credentials)
			}
			out := map[string]listedCred{}
			for _, raw := range got.Credentials {
				var c listedCred
				if err := json.Unmarshal(raw, &c); err != nil {
					t.Fatal(err)
				}
				out[c.ID] = c
			}
			return out
		}
		before := list("at first")
		// The first pages were new to the cache, which so reads pages
		// whole for a while; one page in eight asks for the stamps and
		// finds them held. From then on each page reads its stamps, and
		// the changes below are found through them.
		for range 8 {
			do(t, b, "GET", "/v1/credentials?limit=100", read, "")
		}
		if dialect == "postgres" && api.ListCacheCold(b.srv) {
			t.Fatal("the list cache is still cold after 8 pages it holds")
		}

		warm := func(what string) {
			t.Helper()
			if dialect == "postgres" && api.ListCacheCold(b.srv) {
				t.Errorf("%s: the list cache went cold, so the change was not found through the stamps", what)
			}
		}
		newVer := other.Rotate(t, deliverytest.CredA)
		if got := list("after a rotation elsewhere")[deliverytest.CredA]; got.CurrentVersion == nil || got.CurrentVersion.ID != newVer ||
			got.CurrentVersion.ID == before[deliverytest.CredA].CurrentVersion.ID {
			t.Errorf("after a rotation elsewhere to %s, %s lists %+v", newVer, deliverytest.CredA, got.CurrentVersion)
		}
		warm("after a rotation elsewhere")

		ctx := t.Context()
		v, err := other.Store.GetVersion(ctx, newVer)
		if err != nil {
			t.Fatal(err)
		}
		v.ExpiresAt = time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
		v.GrantedScope = []string{"granted:elsewhere"}
		if err := other.Store.InTx(ctx, func(tx store.Tx) error { return tx.UpdateVersion(ctx, v) }); err != nil {
			t.Fatal(err)
		}
		got := list("after the current version changed elsewhere")[deliverytest.CredA]
		if got.CurrentVersion == nil || got.CurrentVersion.ExpiresAt == nil || !got.CurrentVersion.ExpiresAt.Equal(v.ExpiresAt) ||
			!slices.Equal(got.GrantedScope, v.GrantedScope) {
			t.Errorf("after the current version changed elsewhere, %s lists %+v, granted %v", deliverytest.CredA, got.CurrentVersion, got.GrantedScope)
		}
		warm("after the current version changed elsewhere")

		c, err := other.Store.GetCredential(ctx, deliverytest.CredB)
		if err != nil {
			t.Fatal(err)
		}
		c.Labels = map[string]string{"team": "moved"}
		if err := other.Store.InTx(ctx, func(tx store.Tx) error { return tx.UpsertCredentialSpec(ctx, c) }); err != nil {
			t.Fatal(err)
		}
		if got := list("after new labels elsewhere")[deliverytest.CredB]; got.Labels["team"] != "moved" {
			t.Errorf("after new labels elsewhere, %s lists labels %v", deliverytest.CredB, got.Labels)
		}
		warm("after new labels elsewhere")

		// Lists at once, while another handle rotates: every page is
		// whole (run with -race, this checks the cache's locking).
		var wg sync.WaitGroup
		errs := make(chan string, 64)
		for range 6 {
			wg.Go(func() {
				for range 10 {
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.tcp.URL+"/v1/credentials?limit=100", nil)
					req.Header.Set("Authorization", "Bearer "+read)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						errs <- err.Error()
						return
					}
					var page struct {
						Credentials []listedCred `json:"credentials"`
					}
					err = json.NewDecoder(resp.Body).Decode(&page)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || err != nil || len(page.Credentials) != 4 {
						errs <- fmt.Sprintf("%d, %d credentials, %v", resp.StatusCode, len(page.Credentials), err)
						return
					}
				}
			})
		}
		other.Rotate(t, deliverytest.CredA)
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("a list during a rotation elsewhere: %s", e)
		}

		if err := other.Store.InTx(ctx, func(tx store.Tx) error { return tx.DeleteCredential(ctx, deliverytest.CredB) }); err != nil {
			t.Fatal(err)
		}
		if got, ok := list("after a deletion elsewhere")[deliverytest.CredB]; ok {
			t.Errorf("after a deletion elsewhere, %s is still listed: %+v", deliverytest.CredB, got)
		}
	})
}
