// Package apitoken issues, lists, revokes and checks the service's API
// tokens (DESIGN.md §11). A token is 256 bits from crypto/rand, written as
// "rtrtok_" followed by 64 hex digits and an 8-hex-digit CRC-32 of them, so
// a secret scanner recognises a leaked one (and tells it from a typo); only
// its SHA-256 is stored. A token carries scopes (consume:SELECTOR for the
// consume API; read, rotate and admin for the management API) and may
// expire.
// Creating and revoking one are audit events.
package apitoken

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/credsel"
	"github.com/rotatorhq/rotator/internal/store"
)

// Prefix starts every token.
const Prefix = "rtrtok_"

// tokenLen is the length of a token: prefix, 64 hex digits of randomness
// and 8 of checksum.
const tokenLen = len(Prefix) + 64 + 8

// Audit actions.
const (
	ActionCreated = "token.created"
	ActionRevoked = "token.revoked"
)

// Errors of Authenticate; each means HTTP 401.
var (
	ErrInvalid = errors.New("not a valid API token")
	ErrUnknown = errors.New("unknown API token")
	ErrExpired = errors.New("API token expired")
	ErrRevoked = errors.New("API token revoked")
)

// Kind is what a scope allows.
type Kind string

// Scope kinds: KindConsume reads values (the consume API); KindRead,
// KindRotate and KindAdmin are the management API's, each including the
// one before it.
const (
	KindConsume Kind = "consume"
	KindRead    Kind = "read"
	KindRotate  Kind = "rotate"
	KindAdmin   Kind = "admin"
)

// Scope is one permission of a token: a kind, with a credential selector
// for consume ("consume:github-mcp", "consume:team=platform", "consume:*").
type Scope struct {
	Kind     Kind
	Selector credsel.Selector
}

// ParseScope parses a scope.
func ParseScope(s string) (Scope, error) {
	kind, rest, hasSel := strings.Cut(strings.TrimSpace(s), ":")
	switch Kind(kind) {
	case KindConsume:
		if !hasSel {
			return Scope{}, fmt.Errorf("scope %q: consume needs a credential: consume:ID, consume:key=value[,key=value] or consume:*", s)
		}
		sel, err := credsel.Parse(rest)
		if err != nil {
			return Scope{}, fmt.Errorf("scope %q: %w", s, err)
		}
		return Scope{Kind: KindConsume, Selector: sel}, nil
	case KindRead, KindRotate, KindAdmin:
		if hasSel {
			return Scope{}, fmt.Errorf("scope %q: %s takes no credential", s, kind)
		}
		return Scope{Kind: Kind(kind)}, nil
	}
	return Scope{}, fmt.Errorf("scope %q: unknown; use consume:CREDENTIAL-OR-SELECTOR, read, rotate or admin", s)
}

// String returns the scope as ParseScope reads it.
func (s Scope) String() string {
	if s.Kind == KindConsume {
		return string(s.Kind) + ":" + s.Selector.String()
	}
	return string(s.Kind)
}

// New returns a fresh token and its hash.
func New() (token string, hash []byte) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	body := hex.EncodeToString(b[:])
	token = fmt.Sprintf("%s%s%08x", Prefix, body, crc32.ChecksumIEEE([]byte(body)))
	return token, Hash(token)
}

// Hash returns the SHA-256 of a token, as stored.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// WellFormed reports whether s has a token's form and checksum.
func WellFormed(s string) bool {
	if len(s) != tokenLen || !strings.HasPrefix(s, Prefix) {
		return false
	}
	body, sum := s[len(Prefix):len(Prefix)+64], s[len(Prefix)+64:]
	for _, c := range []byte(body + sum) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return subtle.ConstantTimeCompare([]byte(sum), fmt.Appendf(nil, "%08x", crc32.ChecksumIEEE([]byte(body)))) == 1
}

// Token is an authenticated token with its parsed scopes.
type Token struct {
	store.APIToken
	Scopes []Scope
}

// Identity names the token in audit events: "token:ID (name)".
func (t Token) Identity() string {
	if t.Name == "" {
		return "token:" + t.ID
	}
	return "token:" + t.ID + " (" + t.Name + ")"
}

// CanConsume reports whether the token may read the value of a credential
// with this id and these labels.
func (t Token) CanConsume(id string, labels map[string]string) bool {
	for _, s := range t.Scopes {
		if s.Kind == KindConsume && s.Selector.Matches(id, labels) {
			return true
		}
	}
	return false
}

// Service manages tokens in a store.
type Service struct {
	st     store.Store
	now    func() time.Time
	logger *slog.Logger
	sealer *audit.Sealer
	sealMu sync.Mutex
}

// NewService returns a Service; now is its clock (time.Now when nil).
func NewService(st store.Store, now func() time.Time, logger *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{st: st, now: now, logger: logger, sealer: audit.NewSealer(st, audit.SealerOptions{Now: now})}
}

// CreateRequest asks for a new token.
type CreateRequest struct {
	Name   string
	Scopes []string
	// TTL is how long the token is valid; 0 means it never expires.
	TTL   time.Duration
	Actor string
}

// Created is a new token: the token itself (shown once) and its record.
type Created struct {
	Token  string
	Record store.APIToken
}

// Create issues a token and records a token.created event (id, name,
// scopes, expiry; never the token).
func (s *Service) Create(ctx context.Context, req CreateRequest) (Created, error) {
	if len(req.Scopes) == 0 {
		return Created{}, errors.New("a token needs at least one scope, for example --scope consume:github-mcp")
	}
	if req.TTL < 0 {
		return Created{}, fmt.Errorf("--ttl %s: must not be negative", req.TTL)
	}
	scopes := make([]string, 0, len(req.Scopes))
	for _, raw := range req.Scopes {
		sc, err := ParseScope(raw)
		if err != nil {
			return Created{}, err
		}
		scopes = append(scopes, sc.String())
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	token, hash := New()
	rec := store.APIToken{
		ID:   "tok_" + strings.ToLower(ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String()),
		Name: req.Name, Hash: hash, Scopes: scopes, CreatedBy: req.Actor, CreatedAt: now,
	}
	if req.TTL > 0 {
		rec.ExpiresAt = now.Add(req.TTL)
	}
	data, err := json.Marshal(map[string]any{"token": rec.ID, "name": rec.Name, "scopes": scopes, "expires_at": timeOrNil(rec.ExpiresAt)})
	if err != nil {
		return Created{}, err
	}
	err = s.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.InsertAPIToken(ctx, rec); err != nil {
			return err
		}
		return tx.InsertAuditEvents(ctx, store.AuditEvent{OccurredAt: now, Actor: req.Actor, Action: ActionCreated, Data: data})
	})
	if err != nil {
		return Created{}, fmt.Errorf("storing the API token: %w", err)
	}
	s.seal(ctx)
	return Created{Token: token, Record: rec}, nil
}

// Revoke revokes a token by id and records a token.revoked event; revoking
// a revoked token changes nothing. An unknown id wraps store.ErrNotFound.
func (s *Service) Revoke(ctx context.Context, id, actor string) (store.APIToken, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	var rec store.APIToken
	err := s.st.InTx(ctx, func(tx store.Tx) error {
		var err error
		if rec, err = tx.GetAPIToken(ctx, id); err != nil {
			return err
		}
		if !rec.RevokedAt.IsZero() {
			return nil
		}
		if err := tx.RevokeAPIToken(ctx, id, now); err != nil {
			return err
		}
		rec.RevokedAt = now
		data, err := json.Marshal(map[string]any{"token": rec.ID, "name": rec.Name})
		if err != nil {
			return err
		}
		return tx.InsertAuditEvents(ctx, store.AuditEvent{OccurredAt: now, Actor: actor, Action: ActionRevoked, Data: data})
	})
	if err != nil {
		return store.APIToken{}, fmt.Errorf("revoking API token %q: %w", id, err)
	}
	s.seal(ctx)
	return rec, nil
}

// List returns every token, oldest first.
func (s *Service) List(ctx context.Context) ([]store.APIToken, error) {
	return s.st.ListAPITokens(ctx)
}

// Authenticate returns the token s names, if it is well formed, known, not
// revoked and not expired; otherwise an error wrapping ErrInvalid,
// ErrUnknown, ErrRevoked or ErrExpired (never quoting s).
func (s *Service) Authenticate(ctx context.Context, token string) (Token, error) {
	if !WellFormed(token) {
		return Token{}, ErrInvalid
	}
	rec, err := s.st.GetAPITokenByHash(ctx, Hash(token))
	if errors.Is(err, store.ErrNotFound) {
		return Token{}, ErrUnknown
	}
	if err != nil {
		return Token{}, fmt.Errorf("looking up the API token: %w", err)
	}
	switch {
	case !rec.RevokedAt.IsZero():
		return Token{}, fmt.Errorf("%w (token %s)", ErrRevoked, rec.ID)
	case !rec.ExpiresAt.IsZero() && !s.now().Before(rec.ExpiresAt):
		return Token{}, fmt.Errorf("%w (token %s, at %s)", ErrExpired, rec.ID, rec.ExpiresAt.UTC().Format(time.RFC3339))
	}
	t := Token{APIToken: rec}
	for _, raw := range rec.Scopes {
		sc, err := ParseScope(raw)
		if err != nil {
			s.logger.Warn("API token has a scope this version does not know; ignored", slog.String("token", rec.ID), slog.String("scope", raw))
			continue
		}
		t.Scopes = append(t.Scopes, sc)
	}
	return t, nil
}

// seal seals the event just written, as delivery.Local does, so that the
// audit log verifies without a running service.
func (s *Service) seal(ctx context.Context) {
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	if _, err := s.sealer.Seal(context.WithoutCancel(ctx), 1); err != nil {
		s.logger.Warn("sealing the token audit event failed; a running service or the next command seals it", slog.Any("error", err))
	}
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}
