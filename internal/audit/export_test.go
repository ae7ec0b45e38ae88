package audit

// ReferenceCanonicalJSON exposes the encoding/json implementation to the
// tests, which check the fast path against it.
var ReferenceCanonicalJSON = referenceCanonicalJSON
