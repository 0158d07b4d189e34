// Package records decodes the protobuf records zkactor keeps in znodes
// (proto/zkactor/v1): a registration, a node, a candidate. Znode data can
// come from anyone who may write under the root (another client, an older
// or newer zkactor, an operator), so a decoder never panics and tells what
// is wrong with data it cannot use; callers skip such znodes with a
// warning.
package records

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// ErrUnusable is wrapped by every decoding error: the data is not a record
// zkactor can use (not protobuf, the wrong message, or a required field
// missing).
var ErrUnusable = errors.New("not a usable zkactor record")

// MaxSize bounds the data a decoder looks at. ZooKeeper itself refuses
// znodes near 1 MiB (jute.maxbuffer); zkactor's records are far smaller.
const MaxSize = 1 << 20

// Registration decodes the data of a registration znode
// (<root>/services/<name>/<id>). It must carry a PID with an address and
// an id.
func Registration(data []byte) (*pb.Registration, error) {
	rec := &pb.Registration{}
	if err := unmarshal("registration", data, rec); err != nil {
		return nil, err
	}
	if err := checkPID("registration", rec.GetPid()); err != nil {
		return nil, err
	}
	return rec, nil
}

// Node decodes the data of a node znode (<root>/nodes/<id>). It must carry
// the node's address.
func Node(data []byte) (*pb.Node, error) {
	rec := &pb.Node{}
	if err := unmarshal("node", data, rec); err != nil {
		return nil, err
	}
	if rec.GetAddress() == "" {
		return nil, fmt.Errorf("%w: node record without an address", ErrUnusable)
	}
	return rec, nil
}

// Candidate decodes the data of a candidate znode
// (<root>/globals/<name>/_c_<guid>-c-<seq>). It must carry a PID with an
// address and an id.
func Candidate(data []byte) (*pb.Candidate, error) {
	rec := &pb.Candidate{}
	if err := unmarshal("candidate", data, rec); err != nil {
		return nil, err
	}
	if err := checkPID("candidate", rec.GetPid()); err != nil {
		return nil, err
	}
	return rec, nil
}

func unmarshal(kind string, data []byte, m proto.Message) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty %s data", ErrUnusable, kind)
	}
	if len(data) > MaxSize {
		return fmt.Errorf("%w: %s data of %d bytes, at most %d", ErrUnusable, kind, len(data), MaxSize)
	}
	if err := proto.Unmarshal(data, m); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnusable, kind, err)
	}
	return nil
}

func checkPID(kind string, pid *pb.PID) error {
	switch {
	case pid == nil:
		return fmt.Errorf("%w: %s record without a PID", ErrUnusable, kind)
	case pid.GetAddress() == "" || pid.GetId() == "":
		return fmt.Errorf("%w: %s record with an incomplete PID (address %q, id %q)", ErrUnusable, kind, pid.GetAddress(), pid.GetId())
	}
	return nil
}

// Activation decodes the data of an activation znode
// (<root>/activations/<kind>/<identity>, package provider). It must carry
// the kind, the identity and a PID with an address and an id.
func Activation(data []byte) (*pb.Activation, error) {
	rec := &pb.Activation{}
	if err := unmarshal("activation", data, rec); err != nil {
		return nil, err
	}
	if rec.GetKind() == "" || rec.GetIdentity() == "" {
		return nil, fmt.Errorf("%w: activation record without a kind or identity", ErrUnusable)
	}
	if err := checkPID("activation", rec.GetPid()); err != nil {
		return nil, err
	}
	return rec, nil
}
