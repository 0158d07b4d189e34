package config

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/zkactor/zkactor/cluster"
	configv1 "github.com/zkactor/zkactor/proto/recipes/config/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Bounds of a record, checked before anything is written.
const (
	// MaxRecordSize bounds the data of one config znode, in bytes of the
	// encoded Record. ZooKeeper drops the connection of a client that sends
	// a znode near 1 MiB (jute.maxbuffer); a merged config carries up to
	// three copies of values, so the bound stays well below.
	MaxRecordSize = 128 << 10
	// MaxDepth bounds how deeply objects and lists nest in a record.
	MaxDepth = 64
)

// ParseJSON reads a JSON object into the values of a record, the way
// protojson reads a google.protobuf.Struct, and validates it as Set does.
// A malformed document, one that is not an object, or one over the bounds
// is an error wrapping ErrInvalid (or cluster.ErrTooLarge). Write values
// back as JSON with protojson.Marshal.
func ParseJSON(doc []byte) (*structpb.Struct, error) {
	v := &structpb.Struct{}
	if err := protojson.Unmarshal(doc, v); err != nil {
		return nil, fmt.Errorf("zkactor: parse config JSON: %w: %w", ErrInvalid, err)
	}
	if _, _, err := encode(v); err != nil {
		return nil, fmt.Errorf("zkactor: parse config JSON: %w", err)
	}
	return v, nil
}

// Merge returns service's values with override merged in as a JSON merge
// patch (RFC 7396): each key of override replaces the service's key of that
// name, except that an object merges into an object key by key, at every
// depth, and a null deletes the key. Lists are replaced whole. Neither
// argument is modified; nil stands for the empty object.
func Merge(service, override *structpb.Struct) *structpb.Struct {
	if override == nil {
		if service == nil {
			return &structpb.Struct{Fields: map[string]*structpb.Value{}}
		}
		return proto.Clone(service).(*structpb.Struct)
	}
	return mergeObject(service, override)
}

func mergeObject(target, patch *structpb.Struct) *structpb.Struct {
	out := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(target.GetFields())+len(patch.GetFields()))}
	for k, v := range target.GetFields() {
		if _, patched := patch.GetFields()[k]; !patched {
			out.Fields[k] = proto.Clone(v).(*structpb.Value)
		}
	}
	for k, pv := range patch.GetFields() {
		switch pk := pv.GetKind().(type) {
		case *structpb.Value_NullValue:
			// Deleted: not in out.
		case *structpb.Value_StructValue:
			// An object patches the target's object, or starts from the
			// empty one (which also drops the nulls inside it).
			out.Fields[k] = structpb.NewStructValue(mergeObject(target.GetFields()[k].GetStructValue(), pk.StructValue))
		default:
			out.Fields[k] = proto.Clone(pv).(*structpb.Value)
		}
	}
	return out
}

// encode validates values and returns the data of a Record holding them,
// with a fresh write id.
func encode(values *structpb.Struct) (data []byte, writeID string, err error) {
	if err := validate(values, 1); err != nil {
		return nil, "", err
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	writeID = hex.EncodeToString(id[:])
	data, err = proto.Marshal(&configv1.Record{Values: values, WriteId: writeID})
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(data) > MaxRecordSize {
		return nil, "", fmt.Errorf("a record of %d bytes: %w (at most %d)", len(data), cluster.ErrTooLarge, MaxRecordSize)
	}
	return data, writeID, nil
}

// validate checks that s is a JSON object protojson can write: every value
// set, numbers finite, keys and strings valid UTF-8, nesting bounded.
func validate(s *structpb.Struct, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrInvalid, MaxDepth)
	}
	for k, v := range s.GetFields() {
		if !utf8.ValidString(k) {
			return fmt.Errorf("%w: key %q is not valid UTF-8", ErrInvalid, k)
		}
		if err := validateValue(v, depth); err != nil {
			return fmt.Errorf("%w (key %q)", err, k)
		}
	}
	return nil
}

func validateValue(v *structpb.Value, depth int) error {
	switch k := v.GetKind().(type) {
	case nil:
		return fmt.Errorf("%w: a value with no kind", ErrInvalid)
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return fmt.Errorf("%w: %v is not a JSON number", ErrInvalid, k.NumberValue)
		}
	case *structpb.Value_StringValue:
		if !utf8.ValidString(k.StringValue) {
			return fmt.Errorf("%w: a string that is not valid UTF-8", ErrInvalid)
		}
	case *structpb.Value_StructValue:
		return validate(k.StructValue, depth+1)
	case *structpb.Value_ListValue:
		if depth+1 > MaxDepth {
			return fmt.Errorf("%w: nested deeper than %d", ErrInvalid, MaxDepth)
		}
		for _, e := range k.ListValue.GetValues() {
			if err := validateValue(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// errUnusable is wrapped by what decode reports.
var errUnusable = errors.New("not a config record")

// decode reads the data of a config znode. Empty data is the empty record
// (a znode created without data). Anything else must be a Record whose
// values are valid; data another client wrote is reported, never trusted.
func decode(data []byte) (*configv1.Record, error) {
	rec := &configv1.Record{}
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("%w: %d bytes", errUnusable, len(data))
	}
	if err := proto.Unmarshal(data, rec); err != nil {
		hint := ""
		if t := bytes.TrimSpace(data); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
			hint = " (it looks like JSON: the znode must hold a protobuf Record; write it with Set)"
		}
		return nil, fmt.Errorf("%w: %w%s", errUnusable, err, hint)
	}
	if err := validate(rec.GetValues(), 1); err != nil {
		return nil, fmt.Errorf("%w: %w", errUnusable, err)
	}
	return rec, nil
}
