package cluster

import (
	"errors"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/zkwatch"
)

// follower tells the keeper when one of its znodes may have been deleted
// by someone else. It follows each directory that holds a kept znode with
// a persistent recursive watch (ZooKeeper 3.6+) on a connection of its own
// (internal/zkwatch, whose session owns nothing), so that a delete comes as
// one event naming the znode, whatever the directory's size. Nothing is
// listed per change, and the session that registers sends only its creates
// and deletes: a read on it would wait behind them (a server answers a
// session's requests in order) and hold back the creates behind it.
//
// An event (a delete, or a data change: nobody sets a kept znode's data),
// or a check that does not find the znode as ours, is only a suspicion:
// the follower's server may lag behind the session's, and a znode deleted
// and made again by us looks the same. The keeper settles it on its own
// session, which sees its own writes (keeper.confirm); and as the
// session's server may lag behind the follower's instead, an answer that
// the znode is there is asked again after a sync, which brings that server
// up to the quorum leader's state. An event that comes before the reply to
// our own create (the delete came after the create, the reply late) is a
// suspicion too: confirm waits for the create, then asks.
//
// No delete goes unseen. A create sent after the directory's watch was set
// (the addWatch's reply came back first) is proposed after every
// transaction the follower's server had applied when it set the watch, so
// that server applies the create, and any delete after it, with the watch
// in place, whichever server the session talks to. So the first znode of a
// directory waits for the watch (its parent's create runs meanwhile), and
// a znode created without a watch in place (the follower was not
// connected, or its connection was lost since) is checked once the watch
// is set: an exists on the follower's connection, after the addWatch.
// After every gap of the connection each directory's watch is set again
// and every confirmed znode in it checked.
//
//	watch(dir) ── addWatch ──► reply: ready (creates may go) ── check znodes made unwatched
//	event: deleted, data set ──► suspect ──► get on the session (there: sync, get) ──► gone, not ours or not our data: re-create
//	gap ──► nothing watched ── connected ──► addWatch every directory ── check them
type follower struct {
	k    *keeper
	conn *zkwatch.Conn
	log  func(msg string, args ...any)
	kick chan struct{}
	quit chan struct{}
	done chan struct{}

	mu       sync.Mutex
	gen      uint64 // the live connection; 0: none
	closed   bool
	dirs     map[string]*followed
	due      map[string]bool // directories to look at: new, idle, or not watched on gen
	toCheck  map[string]bool // znodes to check once their directory is watched
	inflight int             // checks sent, not answered
	warned   bool

	calls map[int32]call // owned by run: requests sent on gen
}

// followed is a directory the follower watches, or means to.
type followed struct {
	sent  uint64        // the connection its addWatch went out on; 0: none
	gen   uint64        // the connection whose reply says it is watched; 0: none
	ready chan struct{} // closed when watched, or when waiting is pointless
	idle  bool          // its last kept znode went: stop following it unless one comes back
}

// call is what a request of the follower was for.
type call struct {
	dir     string    // an addWatch
	watched *followed // the entry it was sent for (dir may be followed anew since)
	path    string    // a check
}

// suspicious reports the events that make a kept znode suspect: it is
// gone, or overwritten (nobody sets a kept znode's data). The others (the
// creates the recursive watch reports, ours and everyone's) the follower's
// connection drops as it reads them, without waking the follower.
func suspicious(t zk.EventType) bool {
	return t == zk.EventNodeDeleted || t == zk.EventNodeDataChanged
}

// armWait bounds how long the first create in a directory waits for the
// directory's watch; one made without it is checked once it is set.
const armWait = 250 * time.Millisecond

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newFollower(k *keeper, conn *zkwatch.Conn) *follower {
	f := &follower{
		k: k, conn: conn,
		log:     k.s.log.Warn,
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		dirs:    map[string]*followed{},
		due:     map[string]bool{},
		toCheck: map[string]bool{},
		calls:   map[int32]call{},
	}
	go f.run()
	return f
}

func (f *follower) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// watch follows dir and returns a channel closed once its watch is set
// (at once when it is, or when the follower has no connection now).
func (f *follower) watch(dir string) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.follow(dir)
	if f.closed || f.gen == 0 || d.gen == f.gen {
		return closedChan
	}
	if d.ready == nil {
		d.ready = make(chan struct{})
	}
	return d.ready
}

// follow returns dir's state, following it from now on. Under f.mu.
func (f *follower) follow(dir string) *followed {
	d := f.dirs[dir]
	if d == nil {
		d = &followed{}
		f.dirs[dir] = d
		f.due[dir] = true
		f.poke()
	}
	d.idle = false
	return d
}

// watchedOn is the connection on which dir's watch is set, 0 for none.
func (f *follower) watchedOn(dir string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.dirs[dir]; d != nil && d.gen == f.gen {
		return d.gen
	}
	return 0
}

// created is told that path was confirmed by a create sent when dir's
// watch was set on connection gen (0: none): unless that watch still
// stands, path is checked once one does. The keeper has recorded the
// create before it calls this (see keeper.ensure).
func (f *follower) created(path string, gen uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || gen != 0 && gen == f.gen {
		return
	}
	f.follow(parentDir(path))
	f.toCheck[path] = true
	f.poke()
}

// idle is told that dir holds no kept znode any more. Under k.mu.
func (f *follower) idle(dir string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.dirs[dir]; d != nil {
		d.idle = true
		f.due[dir] = true
		f.poke()
	}
}

// forget drops path's check, if one is waiting: it is no longer kept.
// Under k.mu.
func (f *follower) forget(path string) {
	f.mu.Lock()
	delete(f.toCheck, path)
	f.mu.Unlock()
}

// busy reports checks not yet answered.
func (f *follower) busy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.toCheck) > 0 || f.inflight > 0
}

func (f *follower) close() {
	f.mu.Lock()
	f.closed = true
	for _, d := range f.dirs {
		d.release()
	}
	f.mu.Unlock()
	close(f.quit)
	f.conn.Close()
	<-f.done
}

// release lets the creates waiting for d's watch go. Under f.mu.
func (d *followed) release() {
	if d.ready != nil {
		close(d.ready)
		d.ready = nil
	}
}

func (f *follower) run() {
	defer close(f.done)
	for {
		select {
		case <-f.quit:
			return
		case <-f.conn.Wake():
			for _, it := range f.conn.Take() {
				f.handle(it)
			}
		case <-f.kick:
		}
		f.send()
	}
}

// handle takes one item of the connection, in wire order.
func (f *follower) handle(it zkwatch.Item) {
	switch it.Kind {
	case zkwatch.Connected:
		f.mu.Lock()
		f.gen = it.Gen
		for dir := range f.dirs {
			f.due[dir] = true
		}
		f.mu.Unlock()
	case zkwatch.Gap:
		f.mu.Lock()
		f.gen, f.inflight = 0, 0
		for _, d := range f.dirs {
			d.sent, d.gen = 0, 0
			d.release()
		}
		f.mu.Unlock()
		clear(f.calls)
	case zkwatch.Event:
		if suspicious(it.Type) {
			f.k.suspect(it.Path)
		}
	case zkwatch.Reply:
		c, ok := f.calls[it.Xid]
		if !ok {
			return // a removeWatches
		}
		delete(f.calls, it.Xid)
		if c.dir != "" {
			f.watched(it, c.dir, c.watched)
			return
		}
		f.mu.Lock()
		f.inflight--
		f.mu.Unlock()
		var owner int64
		if it.Err == nil && it.Stat != nil {
			owner = it.Stat.EphemeralOwner
		}
		f.k.suspectUnlessOwned(c.path, owner)
	}
}

// watched takes the reply to dir's addWatch: creates may go, and the
// znodes made while it was not set are checked.
func (f *follower) watched(it zkwatch.Item, dir string, sentFor *followed) {
	if it.Err != nil {
		f.mu.Lock()
		first := !f.warned
		f.warned = true
		f.mu.Unlock()
		if first || !errors.Is(it.Err, zkwatch.ErrUnimplemented) {
			f.log("cannot watch a directory of kept ephemeral znodes: one deleted by someone else is not re-created (persistent watches need ZooKeeper 3.6+)",
				"dir", dir, "err", it.Err)
		}
	}
	// Every confirmed znode of ours in dir: those made before this watch
	// was set are the ones that need it, and telling them apart would
	// cost more than the exists of the others (after a gap: all of them).
	f.k.mu.Lock()
	f.mu.Lock()
	d := f.dirs[dir]
	if d != nil && d == sentFor && d.sent == it.Gen && f.gen == it.Gen {
		d.gen = it.Gen
		d.release()
		if it.Err == nil {
			for p := range f.k.byDir[dir] {
				if f.k.created[p] != 0 {
					f.toCheck[p] = true
				}
			}
		}
	}
	f.mu.Unlock()
	f.k.mu.Unlock()
}

// send sends what is due on the live connection: the addWatch of each
// directory not watched on it, the checks of znodes whose directory is,
// and the removal of the watches of idle directories.
func (f *follower) send() {
	f.mu.Lock()
	idle := len(f.due) == 0 && (len(f.toCheck) == 0 || f.gen == 0)
	f.mu.Unlock()
	if idle {
		return // the usual case, after an event: no need of the keeper's lock
	}
	f.k.mu.Lock()
	defer f.k.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	gen := f.gen
	for dir := range f.due {
		d := f.dirs[dir]
		if d == nil {
			delete(f.due, dir)
			continue
		}
		if d.idle && f.k.byDir[dir] == nil {
			delete(f.due, dir)
			delete(f.dirs, dir)
			d.release()
			if gen != 0 && d.sent == gen {
				_, _ = f.conn.RemoveWatch(gen, dir) // the reply has no call: dropped
			}
			continue
		}
		d.idle = false
		if gen == 0 {
			continue // until connected
		}
		delete(f.due, dir)
		if d.sent == gen {
			continue
		}
		xid, err := f.conn.AddWatch(gen, dir)
		if err != nil {
			f.due[dir] = true
			return // a gap, or the end, is on its way
		}
		d.sent = gen
		f.calls[xid] = call{dir: dir, watched: d}
	}
	if gen == 0 {
		return
	}
	for p := range f.toCheck {
		d := f.dirs[parentDir(p)]
		if _, wanted := f.k.wanted[p]; !wanted || d == nil {
			delete(f.toCheck, p)
			continue
		}
		if d.gen != gen {
			continue // after its addWatch's reply
		}
		xid, err := f.conn.Exists(gen, p)
		if err != nil {
			return // a gap, or the end: checked after the next addWatch
		}
		delete(f.toCheck, p)
		f.inflight++
		f.calls[xid] = call{path: p}
	}
}
