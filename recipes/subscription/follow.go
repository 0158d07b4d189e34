package subscription

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"

	subv1 "github.com/zkactor/zkactor/proto/recipes/subscription/v1"
)

// Backoff between attempts to list a directory again after a listing
// failed (a directory this connection may not read, say).
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// testHookListed, when set (by tests), runs on the stream's goroutine
// after each listing, and after each creation event, before the reads
// they ask for are sent: a test changes ZooKeeper there to play a change
// that races the reads.
var testHookListed atomic.Pointer[func()]

func runTestHook() {
	if h := testHookListed.Load(); h != nil {
		(*h)()
	}
}

// follow is one subscription. Everything below the line is owned by the
// stream's goroutine (stream.go); other goroutines only cancel it.
type follow struct {
	s       *Subscriptions
	id      uint64
	service string // "" for nodes
	dir     string
	pid     *actor.PID
	decode  decoder
	log     *slog.Logger

	ctx     context.Context
	cancel  context.CancelFunc
	started chan error    // the first listing's outcome, for Subscribe
	done    chan struct{} // closed when the subscription has ended
	release []func() bool // context.AfterFuncs to stop when it ends

	// ---- owned by the stream's goroutine
	ended     bool
	listing   bool  // its addWatch and listing are on the wire
	following bool  // listed on this connection: events apply to it
	watchErr  error // the addWatch's reply, read with the listing's
	queue     []*step
	inflight  map[string][]*read // reads sent and not answered, by child name
	view      view
	seq       uint64
	zxid      int64 // the last message's: messages never go back
	backoff   time.Duration
	retry     *time.Timer
}

// stop ends the subscription and waits until no further message can be
// sent.
func (f *follow) stop() {
	f.cancel()
	<-f.done
}

func (f *follow) send(m proto.Message) { f.s.system.Root.Send(f.pid, m) }

// stamp is the zxid of the next message: at least z, never below the
// last message's.
func (f *follow) stamp(z int64) int64 {
	f.zxid = max(f.zxid, z)
	return f.zxid
}

// A step is one thing to tell the subscriber, in the order the stream
// showed it: a listing (the snapshot, or the difference after a gap), a
// child's creation (a join, once its data is read), a deletion (a leave),
// or a change that tells nothing but counts in the directory's children
// version. Steps are applied strictly in order, each once its reads are
// answered.
type step struct {
	kind    stepKind
	pending int // reads not answered yet

	// stepListing
	stat  *zk.Stat // nil when the directory does not exist
	plan  plan
	reads []*read

	// stepJoin
	read *read

	// stepLeave
	name string
	seen int64 // the last zxid the connection had seen when the deletion came
}

type stepKind int

const (
	stepListing stepKind = iota
	stepJoin
	stepLeave
	stepCounted    // a child created or deleted that is never reported
	stepDirChanged // the directory itself was deleted or created
)

// A read is a getData of a child's new life, or (verify) an exists of a
// kept child after a gap.
type read struct {
	step   *step
	name   string
	verify bool
	// expect is the creation zxid an exists found for a new life (0 when
	// the life is the one the event or listing showed).
	expect int64

	// dead: a deletion of the child came before the reply, so the reply
	// is about a later state than the one the read was sent for.
	dead bool
	data []byte
	stat *zk.Stat
	err  error
	// changed: a verify found another life than the known one; a
	// getData for it is in the same step.
	changed bool
}

// apply tells the subscriber one step, whose reads are all answered.
func (f *follow) apply(st *step) {
	switch st.kind {
	case stepListing:
		f.applyListing(st)
	case stepJoin:
		f.view.cversion++
		f.applyJoin(st.read)
	case stepLeave:
		f.view.cversion++
		k, ok := f.view.children[st.name]
		delete(f.view.children, st.name)
		if !ok {
			f.log.Debug("a deleted child was never known", "path", f.dir+"/"+st.name)
			return
		}
		if k.member == nil {
			return // never reported: nor is its leave
		}
		f.seq++
		f.send(&subv1.Left{Subscription: f.id, Seq: f.seq, Service: f.service, Member: k.member, Zxid: f.stamp(st.seen)})
	case stepCounted:
		f.view.cversion++
	case stepDirChanged:
		// Another directory under the same path: its children version
		// starts again, and the next listing after a gap must check
		// every kept child.
		f.view.czxid = 0
	}
}

// member turns a getData's answer into the member it reports, or nil
// when it reports nothing: gone before it was read, or not a usable
// record (remembered, so that its leave is not reported either).
func (f *follow) member(r *read) (m *subv1.Member, remember bool, czxid int64) {
	p := f.dir + "/" + r.name
	switch {
	case r.dead || errors.Is(r.err, zk.ErrNoNode):
		// Deleted before its data could be read: neither its join nor
		// its leave is reported.
		return nil, false, 0
	case r.err != nil:
		// Most likely an ACL that does not let this client read it:
		// another client's child, not a usable record.
		f.log.Debug("skipping a child this connection may not read", "path", p, "err", r.err)
		return nil, true, 0
	case r.expect != 0 && r.stat.Czxid != r.expect:
		return nil, false, 0 // another life again: dead in effect
	}
	m = &subv1.Member{Id: r.name, Czxid: r.stat.Czxid}
	if err := f.decode(m, r.data); err != nil {
		f.log.Debug("skipping a child that is not a usable record", "path", p, "bytes", len(r.data), "err", err)
		return nil, true, r.stat.Czxid
	}
	return m, true, r.stat.Czxid
}

func (f *follow) applyJoin(r *read) {
	m, remember, czxid := f.member(r)
	if !remember {
		return
	}
	if old, ok := f.view.children[r.name]; ok && old.member != nil {
		// Cannot happen in wire order (its deletion came first); if it
		// does, the receiver still holds one life per id.
		f.seq++
		f.send(&subv1.Left{Subscription: f.id, Seq: f.seq, Service: f.service, Member: old.member, Zxid: f.stamp(czxid)})
	}
	f.view.children[r.name] = known{czxid: czxid, member: m}
	if m == nil {
		return
	}
	f.seq++
	f.send(&subv1.Joined{Subscription: f.id, Seq: f.seq, Service: f.service, Member: m, Zxid: f.stamp(czxid)})
}

// applyListing sends the snapshot (first listing) or the difference
// between what the subscriber was told and the listing (after a gap):
// leaves first, then joins, each in creation order.
func (f *follow) applyListing(st *step) {
	gone := st.plan.gone
	var fresh []*read
	for _, r := range st.reads {
		switch {
		case !r.verify:
			fresh = append(fresh, r)
		case r.changed:
			gone = append(gone, r.name) // its new life is a fresh read of this step
		case r.dead:
			// Deleted after the listing: the known life stays, and the
			// deletion's own step reports its leave.
			f.log.Debug("a kept child was deleted after the listing; its leave follows", "path", f.dir+"/"+r.name)
		}
	}
	var left, joined []*subv1.Member
	for _, n := range gone {
		if k := f.view.children[n]; k.member != nil {
			left = append(left, k.member)
		}
		delete(f.view.children, n)
	}
	for _, r := range fresh {
		m, remember, czxid := f.member(r)
		if !remember {
			continue
		}
		f.view.children[r.name] = known{czxid: czxid, member: m}
		if m != nil {
			joined = append(joined, m)
		}
	}
	var zxid int64
	f.view.czxid, f.view.cversion = 0, 0
	if st.stat != nil {
		f.view.czxid, f.view.cversion, zxid = st.stat.Czxid, st.stat.Cversion, st.stat.Pzxid
	}
	zxid = f.stamp(zxid)
	byCzxid(left)
	byCzxid(joined)
	if f.seq == 0 {
		f.seq = 1
		f.send(&subv1.Snapshot{Subscription: f.id, Seq: f.seq, Service: f.service, Members: joined, Zxid: zxid})
		return
	}
	for _, m := range left {
		f.seq++
		f.send(&subv1.Left{Subscription: f.id, Seq: f.seq, Service: f.service, Member: m, Zxid: zxid})
	}
	for _, m := range joined {
		f.seq++
		f.send(&subv1.Joined{Subscription: f.id, Seq: f.seq, Service: f.service, Member: m, Zxid: zxid})
	}
}
