package config

import (
	"errors"
	"fmt"
)

// Sentinel errors for the decisions a caller makes. Everything else is
// wrapped with the operation and the znode path.
var (
	// ErrConflict: a compare-and-set write found another version than it
	// expected. The error is a *ConflictError, which carries the current
	// version.
	ErrConflict = errors.New("zkactor: config version conflict")
	// ErrInvalid: a record that is not a valid config (malformed JSON, a
	// value JSON cannot hold, nesting deeper than MaxDepth, a bad expected
	// version). Nothing was written.
	ErrInvalid = errors.New("zkactor: invalid config")
	// ErrBadRecord: a config znode holds data that is not a Record (written
	// by another client). Get reports it; subscribers are told in
	// Config.Error.
	ErrBadRecord = errors.New("zkactor: config znode holds no usable record")
	// ErrNoService: an override was written for a service that has no
	// config record. Set the service's record first.
	ErrNoService = errors.New("zkactor: service has no config record")
	// ErrNotAllowed: the znode's ACL refuses this client the operation.
	ErrNotAllowed = errors.New("zkactor: not allowed by the znode's ACL")
)

// ConflictError is the ErrConflict of a compare-and-set write: the record
// at Path had version Current (Absent: it did not exist) when the write
// expected Expected. errors.Is(err, ErrConflict) holds.
type ConflictError struct {
	Path     string
	Expected int32
	Current  int32
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%v: %s is at %s, the write expected %s", ErrConflict, e.Path, versionString(e.Current), versionString(e.Expected))
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Unwrap() error { return ErrConflict }

func versionString(v int32) string {
	switch v {
	case Absent:
		return "no version (absent)"
	case AnyVersion:
		return "any version"
	}
	return fmt.Sprintf("version %d", v)
}
