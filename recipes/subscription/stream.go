package subscription

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/zkwatch"
)

// stream is the one goroutine of a Subscriptions that talks to its
// zkwatch connection: it sends the requests, takes the replies and the
// watch events in the order they arrived, and turns them into each
// subscription's steps. It owns the state of every follow below its line;
// the rest of the package reaches it with post.
type stream struct {
	s    *Subscriptions
	conn *zkwatch.Conn

	gen      uint64 // the live connection's, when live
	live     bool
	lastZxid int64 // the newest zxid of a reply
	follows  map[*follow]struct{}
	byDir    map[string]map[*follow]struct{}
	calls    map[int32]call // xid → what its reply is for

	mu     sync.Mutex // guards cmds and ended
	cmds   []func(*stream)
	kick   chan struct{}
	ended  bool
	exited chan struct{}
}

// call is what a request was sent for.
type call struct {
	f    *follow
	kind callKind
	read *read
}

type callKind int

const (
	callWatch callKind = iota
	callList
	callRead
)

func newStream(s *Subscriptions, conn *zkwatch.Conn) *stream {
	return &stream{
		s: s, conn: conn,
		follows: map[*follow]struct{}{},
		byDir:   map[string]map[*follow]struct{}{},
		calls:   map[int32]call{},
		kick:    make(chan struct{}, 1),
		exited:  make(chan struct{}),
	}
}

// post runs fn on the stream's goroutine. It reports false when the
// stream has ended (fn will not run).
func (l *stream) post(fn func(*stream)) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return false
	}
	l.cmds = append(l.cmds, fn)
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return true
}

// run serves until Close or the end of the registry's session; then it
// ends every subscription and closes the connection.
func (l *stream) run() {
	defer close(l.exited)
	defer l.conn.Close()
	for {
		select {
		case <-l.conn.Wake():
			for _, it := range l.conn.Take() {
				l.handle(it)
			}
		case <-l.kick:
			l.mu.Lock()
			cmds := l.cmds
			l.cmds = nil
			l.mu.Unlock()
			for _, fn := range cmds {
				fn(l)
			}
		case <-l.s.life.Done():
			l.endAll()
			return
		case <-l.s.s.Done():
			l.s.log.Debug("subscriptions end with their session")
			l.endAll()
			return
		}
	}
}

func (l *stream) endAll() {
	l.mu.Lock()
	l.ended = true
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, fn := range cmds {
		fn(l) // adds end at once: l.ended is set
	}
	for f := range l.follows {
		l.end(f, cluster.ErrClosed)
	}
}

// add starts following f.
func (l *stream) add(f *follow) {
	if l.ended || f.ctx.Err() != nil {
		l.end(f, cluster.ErrClosed)
		return
	}
	l.follows[f] = struct{}{}
	set := l.byDir[f.dir]
	if set == nil {
		set = map[*follow]struct{}{}
		l.byDir[f.dir] = set
	}
	set[f] = struct{}{}
	f.backoff = minBackoff
	f.view = view{children: map[string]known{}}
	if l.live {
		l.list(f)
	}
}

// end stops following f: err goes to a Subscribe still waiting for its
// snapshot.
func (l *stream) end(f *follow, err error) {
	if f.ended {
		return
	}
	f.ended = true
	delete(l.follows, f)
	if set := l.byDir[f.dir]; set != nil {
		delete(set, f)
		if len(set) == 0 {
			// The last subscription of the directory: remove its watch,
			// or every later change below it would come to this
			// connection for its whole life (a node that follows
			// short-lived services one after another would collect
			// their watches). A later subscription's addWatch goes out
			// after this on the wire and sets it again. The reply (or
			// ErrNoWatcher, when the addWatch never went out) tells
			// nothing: it has no call and is dropped; and after a gap
			// the watch is gone anyway.
			delete(l.byDir, f.dir)
			if l.live && !l.ended {
				_, _ = l.conn.RemoveWatch(l.gen, f.dir)
			}
		}
	}
	if f.retry != nil {
		f.retry.Stop()
	}
	f.queue, f.inflight = nil, nil
	f.s.remove(f)
	if f.seq == 0 {
		if err == nil {
			err = cluster.ErrClosed
		}
		f.started <- err
	}
	for _, stop := range f.release {
		stop()
	}
	f.cancel()
	close(f.done)
}

// list sets the persistent watch on f's directory and lists it, in one
// round trip: the server answers them in order, so every event after the
// listing's reply is a change the listing does not show, and every event
// before it one that it does.
func (l *stream) list(f *follow) {
	if f.listing || f.ended {
		return
	}
	f.following, f.watchErr = false, nil
	f.queue, f.inflight = nil, map[string][]*read{}
	xw, err := l.conn.AddWatch(l.gen, f.dir)
	if err != nil {
		return // the gap (or Close) is on its way; Connected lists again
	}
	l.calls[xw] = call{f: f, kind: callWatch}
	xl, err := l.conn.GetChildren(l.gen, f.dir)
	if err != nil {
		return
	}
	l.calls[xl] = call{f: f, kind: callList}
	f.listing = true
}

// handle takes one item of the connection, in wire order.
func (l *stream) handle(it zkwatch.Item) {
	switch it.Kind {
	case zkwatch.Connected:
		l.gen, l.live = it.Gen, true
		l.s.watchLive.Store(true)
		for f := range l.follows {
			if f.retry == nil {
				l.list(f)
			}
		}
	case zkwatch.Gap:
		// No reply of that connection will come, and its watches are
		// gone. What each subscriber was told stays (the view); what was
		// under way is dropped, and the next listing sends the
		// difference.
		l.live = false
		l.s.watchLive.Store(false)
		l.calls = map[int32]call{}
		for f := range l.follows {
			f.listing, f.following = false, false
			f.queue, f.inflight = nil, nil
		}
	case zkwatch.Reply:
		l.lastZxid = max(l.lastZxid, it.Zxid)
		c, ok := l.calls[it.Xid]
		if !ok {
			return
		}
		delete(l.calls, it.Xid)
		if c.f.ended || !c.f.listing && !c.f.following {
			return
		}
		switch c.kind {
		case callWatch:
			c.f.watchErr = it.Err
		case callList:
			l.listed(c.f, it)
		case callRead:
			l.answered(c.f, c.read, it)
		}
	case zkwatch.Event:
		l.event(it)
	}
}

// listed handles the reply of f's listing.
func (l *stream) listed(f *follow, it zkwatch.Item) {
	f.listing = false
	err := f.watchErr // without the watch, the listing is of no use
	if err == nil {
		err = it.Err
	}
	names, stat := it.Children, it.Stat
	if errors.Is(err, zk.ErrNoNode) && f.watchErr == nil {
		// No directory yet: the watch reports its creation and children.
		names, stat, err = nil, nil, nil
	}
	if err != nil {
		l.failed(f, fmt.Errorf("watch and list %s: %w", f.dir, err))
		return
	}
	f.backoff = minBackoff
	f.following = true
	runTestHook()
	st := &step{kind: stepListing, stat: stat, plan: diff(&f.view, names, stat)}
	for _, n := range st.plan.fresh {
		l.read(f, st, &read{name: n})
	}
	for _, n := range st.plan.verify {
		l.read(f, st, &read{name: n, verify: true})
	}
	f.queue = append(f.queue, st)
	l.flush(f)
}

// failed handles a listing that failed: the first one fails Subscribe; a
// later one is tried again after a backoff.
func (l *stream) failed(f *follow, err error) {
	if f.seq == 0 {
		l.end(f, err)
		return
	}
	f.log.Debug("listing failed; retrying", "err", err, "backoff", f.backoff)
	f.retry = time.AfterFunc(f.backoff, func() {
		l.post(func(l *stream) {
			f.retry = nil
			if l.live {
				l.list(f)
			}
		})
	})
	f.backoff = min(2*f.backoff, maxBackoff)
}

// read sends r (part of st) and counts it as pending.
func (l *stream) read(f *follow, st *step, r *read) {
	r.step = st
	st.pending++
	if st.kind == stepListing {
		st.reads = append(st.reads, r)
	}
	p := f.dir + "/" + r.name
	var xid int32
	var err error
	if r.verify {
		xid, err = l.conn.Exists(l.gen, p)
	} else {
		xid, err = l.conn.GetData(l.gen, p)
	}
	if err != nil {
		return // a gap: the step is dropped with the queue
	}
	l.calls[xid] = call{f: f, kind: callRead, read: r}
	f.inflight[r.name] = append(f.inflight[r.name], r)
}

// answered handles the reply to a read.
func (l *stream) answered(f *follow, r *read, it zkwatch.Item) {
	rs := f.inflight[r.name]
	for i, x := range rs {
		if x == r {
			rs = append(rs[:i:i], rs[i+1:]...)
			break
		}
	}
	if len(rs) == 0 {
		delete(f.inflight, r.name)
	} else {
		f.inflight[r.name] = rs
	}
	if !r.dead {
		r.data, r.stat, r.err = it.Data, it.Stat, it.Err
		if r.err == nil && r.stat == nil {
			r.err = errors.New("reply without a stat")
		}
		if r.verify && r.err == nil && r.stat.Czxid != f.view.children[r.name].czxid {
			// Another life than the known one: read it too.
			r.changed = true
			l.read(f, r.step, &read{name: r.name, expect: r.stat.Czxid})
		}
	}
	r.step.pending--
	l.flush(f)
}

// event handles a watch event: a child of a followed directory created
// or deleted, or the directory itself.
func (l *stream) event(it zkwatch.Item) {
	dir, name := it.Path, ""
	if l.byDir[dir] == nil {
		i := strings.LastIndexByte(it.Path, '/')
		if i <= 0 {
			return
		}
		dir, name = it.Path[:i], it.Path[i+1:]
	}
	for f := range l.byDir[dir] {
		if !f.following {
			continue // its listing, still to come, shows this change
		}
		switch {
		case name == "" && (it.Type == zk.EventNodeCreated || it.Type == zk.EventNodeDeleted):
			f.queue = append(f.queue, &step{kind: stepDirChanged})
		case name == "":
		case it.Type == zk.EventNodeCreated:
			runTestHook()
			st := &step{kind: stepJoin}
			st.read = &read{name: name}
			l.read(f, st, st.read)
			f.queue = append(f.queue, st)
		case it.Type == zk.EventNodeDeleted:
			f.queue = append(f.queue, l.deleted(f, name))
		default:
			// A member's data changed in place (zkactor re-registers by
			// delete and create; someone else did this): the member
			// stays as it joined.
			f.log.Debug("ignoring a change of a child's data", "path", it.Path, "type", it.Type)
		}
		l.flush(f)
	}
	// Paths deeper than a directory's children are not members.
}

// deleted is the step of a child's deletion. A deletion that comes
// before the reply to a read of that child deleted the life the read was
// sent for: a new life's join is then dropped, and so is its leave; a
// kept child's check is dropped, and the leave reports the known life.
func (l *stream) deleted(f *follow, name string) *step {
	leave := &step{kind: stepLeave, name: name, seen: l.lastZxid}
	for _, r := range f.inflight[name] {
		if r.dead {
			continue
		}
		r.dead = true
		if !r.verify {
			return &step{kind: stepCounted}
		}
	}
	return leave
}

// flush applies the steps at the head of f's queue whose reads are all
// answered.
func (l *stream) flush(f *follow) {
	for len(f.queue) > 0 && f.queue[0].pending == 0 && !f.ended {
		st := f.queue[0]
		f.queue = f.queue[1:]
		first := f.seq == 0
		f.apply(st)
		if first && f.seq == 1 {
			f.s.add(f)
			f.started <- nil
		}
	}
}
