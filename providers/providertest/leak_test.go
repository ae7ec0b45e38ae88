package providertest

import (
	"slices"
	"testing"

	"github.com/rotatorhq/rotator/internal/secret"
)

const (
	// rotator:ignore: test fixture
	password = "Xq7vR2mKp9LwZ4tYb8NcF3hJd6GsA1eU" // 32 random characters
	// rotator:ignore: test fixture
	jwt = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyb3RhdG9yIiwianRpIjoiOWY4ZTdkNmMifQ.c2lnbmF0dXJlLWJ5dGVzLWdvLWhlcmUtYW5kLW1vcmU"
)

func TestRandomPieces(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		value string
		want  []string
	}{
		"password":       {password, []string{password}},
		"jwt":            {jwt, []string{jwt}},
		"connection url": {"postgres://app_a:" + password + "@db.example.com:5432/reports?sslmode=require", []string{password}},
		"random names":   {"postgres://rtr_0d5c4c7142_a:" + password + "@127.0.0.1:5432/rotator_test_5796_d0a26618", []string{password}},
		"key=value":      {"user=app password=" + password + " host=db", []string{password}},
		"words":          {"correct-horse-battery-staple", nil},
		"short":          {"Xq7vR2mK", nil},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := randomPieces(tt.value); !slices.Equal(got, tt.want) {
				t.Errorf("randomPieces(%q) = %q, want %q", tt.value, got, tt.want)
			}
		})
	}
}

func TestLeakIndex(t *testing.T) {
	t.Parallel()
	dsn := "postgres://app_a:" + password + "@db.example.com:5432/reports?sslmode=require"
	idx := newLeakIndex()
	idx.add("minted", secret.NewString(dsn), randomPieces(dsn), []string{"app_a"})
	idx.add("configured", secret.NewString("admin-secret-canary"), nil, nil)
	tests := map[string]struct {
		text string
		leak bool
	}{
		"nothing":                     {"connected to db.example.com:5432 as app_a", false},
		"the whole value":             {"dsn=" + dsn, true},
		"the password":                {"password " + password + " rejected", true},
		"16 bytes of the password":    {"got " + password[7:23], true},
		"15 bytes of the password":    {"got " + password[7:22], false},
		"the password, JSON-escaped":  {`{"v":"` + password + `"}`, true},
		"a configured secret":         {"secret admin-secret-canary", true},
		"part of a configured secret": {"secret admin-secret", false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, leak := idx.find(tt.text); leak != tt.leak {
				t.Errorf("find(%q) = %v, want %v", tt.text, leak, tt.leak)
			}
		})
	}
}
