package provider

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/ctxext"
)

// Activation describes the one activation of a virtual actor: where it
// runs and its epoch.
type Activation struct {
	Kind     string
	Identity string
	// PID is the activation's actor.
	PID *actor.PID
	// MemberID is the id of the hosting member (its ActorSystem's id).
	MemberID string
	// Epoch is the creation zxid of the activation's znode. Activations of
	// one identity are created one after the other (each only once the
	// previous znode is gone), so epochs only grow: a resource the grain
	// writes to can refuse a deposed activation by its smaller epoch.
	Epoch int64
	// Path is the activation's znode. A ZooKeeper write that must not
	// outlive the activation can be fenced with it: a check of Path (any
	// version) in the same multi fails once the activation is over there.
	Path string
}

var activationExtension = ctxext.NextContextExtensionID()

// activationContext carries an Activation in the grain's actor context.
type activationContext struct{ a Activation }

func (activationContext) ExtensionID() ctxext.ContextExtensionID { return activationExtension }

// ActivationOf returns the activation a grain runs as, from inside the
// grain (its actor.Context): its epoch and fencing path above all. It
// reports false for an actor that is not an activation made by this
// package.
func ActivationOf(ctx actor.ExtensionContext) (a Activation, ok bool) {
	defer func() {
		// protoactor's extension table panics on an id it has not grown to.
		if recover() != nil {
			a, ok = Activation{}, false
		}
	}()
	ext, _ := ctx.Get(activationExtension).(activationContext)
	if ext.a.PID == nil {
		return Activation{}, false
	}
	return ext.a, true
}

func withActivation(props *actor.Props, a Activation) *actor.Props {
	return props.Configure(actor.WithOnInit(func(ctx actor.Context) { ctx.Set(activationContext{a}) }))
}
