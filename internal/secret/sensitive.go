package secret

import "strings"

// sensitiveKeyParts are the substrings that make a key name sensitive: a
// configuration key or a log attribute whose name contains one of them holds
// a secret (or must be treated as if it did).
var sensitiveKeyParts = []string{
	"secret", "token", "password", "passwd", "pwd", "key", "authorization",
	"auth_header", "cookie", "credential", "private", "dsn", "session", "bearer",
}

// sensitiveKeyExceptions are key names that contain a sensitive part but hold
// no secret by construction (identifiers, references to other objects).
var sensitiveKeyExceptions = map[string]bool{
	"key_id": true, "keyid": true, "kid": true, "token_url": true, "token_endpoint": true,
	"token_type": true, "key": true, "json_key": true, "secret_id": true, "secret_arn": true,
	"public_key": true, "api_key_header": true, "session_id": true, "private_key_id": true,
	"credential": true, "credentials": true, "credential_id": true, "token_auth_style": true,
	"auth_style": true, "password_policy": true, "key_prefix": true,
}

// IsSensitiveKey reports whether a configuration key or log attribute name
// suggests that its value is a secret (for example client_secret, api_key,
// Authorization, db_password). Matching is case-insensitive and treats '-'
// and '_' alike.
func IsSensitiveKey(name string) bool {
	n := strings.ToLower(strings.ReplaceAll(name, "-", "_"))
	if sensitiveKeyExceptions[n] {
		return false
	}
	// Settings that describe a secret rather than hold one: its length,
	// lifetime, policy, where it is fetched from, what it is called.
	for _, suffix := range []string{"_url", "_length", "_len", "_ttl", "_lifetime", "_policy", "_style", "_type", "_id", "_ids", "_arn", "_name", "_header", "_count"} {
		if strings.HasSuffix(n, suffix) {
			return false
		}
	}
	if strings.HasPrefix(n, "max_") || strings.HasPrefix(n, "min_") {
		return false
	}
	for _, p := range sensitiveKeyParts {
		if strings.Contains(n, p) {
			return true
		}
	}
	return false
}
