// Package rotation is the engine of rotator: it computes when each
// credential is due, drives every rotation through the run state machine
// (DESIGN.md §5) on River workers, rolls back on failure and selects the
// credentials of an emergency rotation. It contains no SQL (it talks to
// internal/store) and no provider-specific code (it asks the registries).
package rotation
