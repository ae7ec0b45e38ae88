package main

// notFoundError marks an error about a credential, run or other object
// that does not exist (exit code 3).
type notFoundError struct{ err error }

func (e notFoundError) Error() string { return e.err.Error() }
func (e notFoundError) Unwrap() error { return e.err }

// notFound marks err as a not-found error.
func notFound(err error) error { return notFoundError{err} }
