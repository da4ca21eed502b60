package engine

import "errors"

// Errors of Apply for a record that is not valid input. Apply returns them
// inside a *FieldError naming the input field at fault (use errors.As for
// the field and errors.Is for the sentinel). Their texts are written for
// the client that sent the record, so they carry no package prefix: the
// API shows FieldError.Err's text as it is, with no string surgery.
var (
	ErrUnknownActor   = errors.New("event has no customer or anonymous_id")
	ErrBothActors     = errors.New("event has both customer and anonymous_id")
	ErrUnknownProduct = errors.New("unknown product")
	ErrUnknownSKU     = errors.New("unknown sku")
	ErrSKUMismatch    = errors.New("sku is not a variant of product")
	ErrMissingField   = errors.New("missing field")
	ErrBadEventType   = errors.New("unknown event type")
	ErrIdentifyCycle  = errors.New("the link would make a cycle of anonymous ids")
	ErrBothTargets    = errors.New("give customer or to_anonymous_id, not both")
	ErrBadValue       = errors.New("value out of range")
	ErrNoEventID      = errors.New("only events, identify and exclusions take an event_id")
)

// ErrBadOp is Apply's error for a record whose Op is none of the known
// ones: a programming error of the caller, not client input.
var ErrBadOp = errors.New("engine: unknown record op")

// FieldError is a rejection of client input caused by one field: Field is
// the input's JSON name ("sku", "variants", "customer"), Err the reason,
// wrapping one of the sentinels above or of package index (index's
// catalog and stock errors, such as index.ErrSKUOwned, reach the client
// the same way). Err's text is meant to be shown to the client as it is.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, err error) error { return &FieldError{Field: field, Err: err} }
