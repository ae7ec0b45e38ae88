package audit

// ReferenceCanonicalJSON exposes the encoding/json implementation to the
// tests, which check the fast path against it.
var ReferenceCanonicalJSON = referenceCanonicalJSON

// Ranges of a few events, so the tests exercise parallel checks on short
// chains.
func init() { minRange = 3 }
