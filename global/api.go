package global

import (
	"errors"

	"github.com/asynkron/protoactor-go/actor"
)

// Sentinel errors for the decisions a caller makes.
var (
	// ErrNotFound: no global process runs under the name right now.
	ErrNotFound = errors.New("zkactor: no global process by that name")
	// ErrNotCandidate: this node does not stand for the name.
	ErrNotCandidate = errors.New("zkactor: not a candidate for that name")
	// ErrResigned: a Resign of the name, made meanwhile, ended the
	// candidacy a RegisterCandidate started before it entered the queue.
	ErrResigned = errors.New("zkactor: the candidacy was resigned")
)

// Leader is one observation of a name's election: who holds the global now.
type Leader struct {
	Name string
	// PID of the running global, nil when none runs (between terms).
	PID *actor.PID
	// NodeID of the node that runs it ("" when none).
	NodeID string
	// Epoch of the term (see package doc); 0 when none runs.
	Epoch int64
}
