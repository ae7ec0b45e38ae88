package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/rotatorhq/rotator/internal/jose"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/providers/oauth2pkjwt"
)

// JWKSPath is the pattern `rotator serve` answers the JSON Web Key Sets of
// oauth2-private-key-jwt providers at: /.well-known/jwks/{provider}.json.
const JWKSPath = "GET /.well-known/jwks/{file}"

// JWKSHandler serves the JSON Web Key Set of an oauth2-private-key-jwt
// provider: the public keys of its credentials' pending, current and
// previous versions (the previous one until it is retired after grace).
// Authorization servers fetch it without a token: it holds public keys
// only, taken from the versions' metadata, never from a sealed value.
// Unknown providers and providers of other types are 404.
func JWKSHandler(st store.Reader, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutSuffix(r.PathValue("file"), ".json")
		if !ok || name == "" {
			notFoundProblem("no such key set; the path is /.well-known/jwks/{provider}.json").write(w, r)
			return
		}
		prov, err := st.GetProvider(r.Context(), name)
		if errors.Is(err, store.ErrNotFound) || (err == nil && prov.Type != oauth2pkjwt.Type) {
			notFoundProblem("no oauth2-private-key-jwt provider of that name").write(w, r)
			return
		}
		set, err := jwksOf(r, st, name)
		if err != nil {
			log.Warn("serving a JWKS failed", slog.String("provider", name), slog.String("error", err.Error()))
			http.Error(w, "key set unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		// Intermediaries revalidate: a withdrawn key must disappear.
		w.Header().Set("Cache-Control", "no-cache")
		_ = json.NewEncoder(w).Encode(set)
	})
}

func jwksOf(r *http.Request, st store.Reader, provider string) (jose.JWKS, error) {
	creds, err := st.ListCredentials(r.Context(), store.CredentialFilter{Provider: provider})
	if err != nil {
		return jose.JWKS{}, err
	}
	set := jose.JWKS{Keys: []jose.JWK{}}
	seen := map[string]bool{}
	for _, c := range creds {
		vers, err := st.ListVersions(r.Context(), c.ID, store.StagePending, store.StageCurrent, store.StagePrevious)
		if err != nil {
			return jose.JWKS{}, err
		}
		for _, v := range vers {
			var k jose.JWK
			if json.Unmarshal([]byte(v.Metadata[oauth2pkjwt.MetaJWK]), &k) != nil || k.Kid == "" || seen[k.Kid] {
				continue
			}
			seen[k.Kid] = true
			set.Keys = append(set.Keys, k.Public())
		}
	}
	return set, nil
}
