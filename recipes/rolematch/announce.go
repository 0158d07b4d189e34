package rolematch

import (
	"github.com/asynkron/protoactor-go/actor"

	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// announce makes a holder see its Assigned message where the tenure's
// guard (package global) delivers the term's Elected: first, before any
// other message, once per actor, and only while the lease holds. It is a
// context decorator, so it sits between the guard and the actor whatever
// middlewares the caller's props carry: the guard stays the one that
// decides, and the actor sees the role's message instead of the election's.
//
// The Assigned carries the latest spec the application has read (see
// specState): an actor that starts again under the same PID, after a lease
// that ran out, has the spec as it is now, not as it was when the holding
// began.
func announce(st *specState) actor.ContextDecorator {
	return func(next actor.ContextDecoratorFunc) actor.ContextDecoratorFunc {
		return func(ctx actor.Context) actor.Context {
			// Called once per actor incarnation (protoactor keeps the
			// decorated context in the actor's context extras).
			return &assignedContext{Context: next(ctx), spec: st}
		}
	}
}

// assignedContext is a holder's context: Message returns the Assigned
// message in place of the first Elected (the guard's, which carries the
// epoch), and everything else unchanged.
type assignedContext struct {
	actor.Context
	spec     *specState
	elected  *pb.Elected // the guard's, once seen
	assigned *rolematchv1.Assigned
}

// Message is the current message, with the term's Elected translated.
// The guard hands the actor its term's Elected before anything else, so
// the first Elected seen is the term's own; a later one (sent by anyone)
// passes through as it is.
func (c *assignedContext) Message() any {
	m := c.Context.Message()
	e, ok := m.(*pb.Elected)
	if !ok {
		return m
	}
	if c.elected == nil && e.GetCandidate() == c.spec.path {
		c.elected = e
		c.assigned = c.spec.assigned(e.GetEpoch())
	}
	if e == c.elected {
		return c.assigned
	}
	return m
}
