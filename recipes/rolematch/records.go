package rolematch

import (
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// errUnusable is wrapped by every decoding error: znode data written by
// someone else (another client, an operator) that is not the record
// expected. Callers skip such znodes with a warning; nothing panics.
var errUnusable = errors.New("not a usable role match record")

// maxRecordSize bounds the data a decoder looks at (ZooKeeper's own limit
// is about 1 MiB).
const maxRecordSize = 1 << 20

func unmarshal(kind string, data []byte, m proto.Message) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty %s data", errUnusable, kind)
	}
	if len(data) > maxRecordSize {
		return fmt.Errorf("%w: %s data of %d bytes, at most %d", errUnusable, kind, len(data), maxRecordSize)
	}
	if err := proto.Unmarshal(data, m); err != nil {
		return fmt.Errorf("%w: %s: %w", errUnusable, kind, err)
	}
	return nil
}

// decodeRole decodes a spec znode's data. A role without a spec is
// written as an empty Role, so empty data is a role without a spec too.
func decodeRole(data []byte) (*rolematchv1.Role, error) {
	rec := &rolematchv1.Role{}
	if len(data) == 0 {
		return rec, nil
	}
	if err := unmarshal("role", data, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// decodeAssignment decodes an assignment znode's data; it must name a
// holder PID.
func decodeAssignment(data []byte) (*rolematchv1.Assignment, error) {
	rec := &rolematchv1.Assignment{}
	if err := unmarshal("assignment", data, rec); err != nil {
		return nil, err
	}
	if rec.GetHolder().GetAddress() == "" || rec.GetHolder().GetId() == "" {
		return nil, fmt.Errorf("%w: assignment without a holder PID", errUnusable)
	}
	return rec, nil
}

// decodeApplicant decodes an applicant znode's data; it must carry a
// limit.
func decodeApplicant(data []byte) (*rolematchv1.Applicant, error) {
	rec := &rolematchv1.Applicant{}
	if err := unmarshal("applicant", data, rec); err != nil {
		return nil, err
	}
	if rec.Limit == 0 {
		return nil, fmt.Errorf("%w: applicant without a limit", errUnusable)
	}
	return rec, nil
}

func pidRecord(pid *actor.PID) *pb.PID { return &pb.PID{Address: pid.Address, Id: pid.Id} }

// assigned builds the first message of a holder of role from its spec;
// the epoch is filled in when the holding starts (see announce).
func assigned(set, role, path string, spec *rolematchv1.Role) *rolematchv1.Assigned {
	m := &rolematchv1.Assigned{Set: set, Role: role, Assignment: path}
	switch s := spec.GetSpec().(type) {
	case *rolematchv1.Role_Data:
		m.Spec = &rolematchv1.Assigned_Data{Data: s.Data}
	case *rolematchv1.Role_Message:
		m.Spec = &rolematchv1.Assigned_Message{Message: s.Message}
	}
	return m
}
