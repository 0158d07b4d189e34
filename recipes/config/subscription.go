package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/zkactor/zkactor/cluster"
	configv1 "github.com/zkactor/zkactor/proto/recipes/config/v1"
)

// backoff is how long a subscription waits before it reads again after a
// failed or stale read. After reads refused by an ACL it doubles with each
// one in a row, up to maxBackoff: the refusal lasts as long as an operator
// takes to repair the ACL, ZooKeeper sends no watch event for a znode the
// client may not read, so reading again is the only way to see the repair,
// and it must not cost ten requests a second meanwhile. (Other failures
// wait for the connection inside the read: no backoff makes them busy.)
const (
	backoff    = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// subscription is one Subscribe: its goroutine (run) owns the parts and
// the watches on them; other goroutines only stop it.
type subscription struct {
	st               *Store
	service, process string
	pid              *actor.PID
	log              *slog.Logger
	ctx              context.Context // ends when the subscription does
	cancel           context.CancelFunc
	done             chan struct{} // closed when run has returned
	stopOnce         sync.Once

	// Owned by run (by Subscribe before run starts).
	svc, ov         *part // as last read, with their watches
	readSvc, readOv bool  // the part changed (or its watch ended): read it again
	refused         bool  // a read was refused by an ACL (warned); reset by a good read
	resync          bool  // a read went back: sync with the quorum leader before the next
	last            *configv1.Config
	lastGood        *structpb.Struct
}

// Subscribe sends pid the merged config of process in service (process ""
// for the service's record alone) at once, as a *configv1.Config, and
// again after every change of either part: the service's record or the
// process's override, written, created or deleted. It returns once the
// first config is sent; ctx bounds that first read only. A Close of the
// store meanwhile makes it fail with cluster.ErrClosed.
//
// The subscription lasts until cancel is called (cancel returns once no
// more messages will be sent), until the actor pid stops (the store watches
// it), until the store is closed, or until the session is closed. It
// survives disconnects and session expiry: it reads both parts again on
// the new session and sends a config only if one of them changed
// meanwhile. Its messages never repeat a state
// and never go back: each one has a larger Revision than the one before,
// and the two parts of a message held together at one moment (a part that
// changed while the other was read is read again first).
//
// Data that is not a Record (written by another client) does not end the
// subscription: pid is sent a Config whose Error names the znode and what
// is wrong, whose Values are the last good merged config it was sent, and
// a Warn is logged. A config follows once the data is repaired.
//
// Each message is pid's own copy: the receiver may edit it.
//
// An ended subscription's watches stay in go-zookeeper's client, which
// cannot remove a watch, until their znodes next change; the next
// subscription on the same znodes takes them over, so the client holds no
// more watches on a znode than subscriptions to it ever lived at once.
func (st *Store) Subscribe(ctx context.Context, service, process string, pid *actor.PID) (cancel func(), err error) {
	if err := validNames("subscribe", service, process, false); err != nil {
		return nil, err
	}
	if pid == nil {
		return nil, fmt.Errorf("zkactor: config subscribe %q/%q: %w: nil PID", service, process, ErrInvalid)
	}
	sub := &subscription{
		st: st, service: service, process: process, pid: pid,
		log:     st.log.With("service", service, "process", process, "pid", pid.String()),
		done:    make(chan struct{}),
		readSvc: true,
		readOv:  process != "",
		ov:      &part{pb: &configv1.Part{Version: Absent}},
	}
	sub.ctx, sub.cancel = context.WithCancel(st.life)
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		sub.cancel()
		return nil, fmt.Errorf("zkactor: config subscribe %q/%q: %w", service, process, cluster.ErrClosed)
	}
	st.subs[sub] = struct{}{}
	st.wg.Add(1)
	st.mu.Unlock()

	first, stopFirst := context.WithCancel(ctx)
	defer stopFirst()
	stopWith := context.AfterFunc(sub.ctx, stopFirst)
	defer stopWith()
	if err := sub.refresh(first); err != nil {
		sub.end()
		if st.life.Err() != nil {
			// Close ended the read: say so, not that ZooKeeper was slow.
			err = cluster.ErrClosed
		}
		return nil, fmt.Errorf("zkactor: config subscribe %q/%q: %w", service, process, err)
	}
	sub.offer()
	watcher := st.system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			c.Watch(pid)
		case *actor.Terminated:
			if m.Who.Equal(pid) {
				sub.log.Debug("the subscriber stopped: ending its subscription")
				sub.stop()
			}
		}
	}))
	go sub.run(watcher)
	return func() {
		sub.stop()
		<-sub.done
	}, nil
}

func (sub *subscription) stop() { sub.stopOnce.Do(sub.cancel) }

// end takes the subscription out of the store, leaving its watches, still
// armed, to the next subscription on the same znodes.
func (sub *subscription) end() {
	sub.stop()
	sub.st.mu.Lock()
	delete(sub.st.subs, sub)
	sub.st.mu.Unlock()
	if sub.svc != nil {
		sub.st.keepSpare(sub.st.ServicePath(sub.service), sub.svc.watch)
	}
	if sub.process != "" {
		sub.st.keepSpare(sub.st.OverridePath(sub.service, sub.process), sub.ov.watch)
	}
	close(sub.done)
	sub.st.wg.Done()
}

// run waits for a watch to fire, reads what changed and offers the result,
// until the subscription ends.
func (sub *subscription) run(watcher *actor.PID) {
	defer sub.end()
	defer sub.st.system.Root.Stop(watcher)
	refusedWait := backoff // grows with reads refused in a row
	for {
		if !sub.readSvc && !sub.readOv {
			select {
			case <-sub.ctx.Done():
				return
			case ev := <-sub.svc.watch:
				sub.changed(ev, &sub.readSvc)
			case ev := <-sub.ov.watch:
				sub.changed(ev, &sub.readOv)
			}
		}
		if sub.resync {
			err := sub.st.s.Do(sub.ctx, cluster.Op{Name: "sync", Path: sub.st.ServicePath(sub.service), Idempotent: true}, func(c *zk.Conn) error {
				_, err := c.Sync(sub.st.ServicePath(sub.service))
				return err
			})
			if err == nil {
				sub.resync = false
			}
		}
		err := sub.refresh(sub.ctx)
		if err == nil && sub.offer() {
			refusedWait, sub.refused = backoff, false
			continue
		}
		if errors.Is(err, cluster.ErrClosed) {
			sub.log.Debug("the session is closed: ending the subscription")
			return
		}
		switch {
		case errors.Is(err, ErrNotAllowed) && !sub.refused:
			// Nothing else tells anyone: the subscriber is sent nothing
			// until the part can be read.
			sub.refused = true
			sub.log.Warn("a config znode's ACL refuses this client the read: the subscription reads it again until allowed", "err", err)
		case err != nil && sub.ctx.Err() == nil:
			sub.log.Debug("reading the config failed; trying again", "err", err)
		}
		wait := backoff
		if errors.Is(err, ErrNotAllowed) {
			wait, refusedWait = refusedWait, min(2*refusedWait, maxBackoff)
		}
		select {
		case <-sub.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// changed notes a watch event on a part: read it again, and everything
// after the session's end (which ends every watch).
func (sub *subscription) changed(ev zk.Event, read *bool) {
	*read = true
	if ev.Type == zk.EventNotWatching {
		sub.readSvc = true
		sub.readOv = sub.process != ""
	}
}

// refresh reads the parts marked for reading, leaving a watch on each, and
// then again those whose watch fired meanwhile, until a read found both
// unchanged since they were read: the two parts held together at the end of
// the last read (ZooKeeper delivers a watch event before the reply to any
// later request of the client).
func (sub *subscription) refresh(ctx context.Context) error {
	for sub.readSvc || sub.readOv {
		if sub.readSvc {
			p, err := sub.st.readPart(ctx, sub.st.ServicePath(sub.service), true)
			if err != nil {
				return err
			}
			sub.svc, sub.readSvc = p, false
		}
		if sub.readOv {
			p, err := sub.st.readPart(ctx, sub.st.OverridePath(sub.service, sub.process), true)
			if err != nil {
				return err
			}
			sub.ov, sub.readOv = p, false
		}
		if ev, ok := fired(sub.svc.watch); ok {
			sub.changed(ev, &sub.readSvc)
		}
		if ev, ok := fired(sub.ov.watch); ok {
			sub.changed(ev, &sub.readOv)
		}
	}
	return nil
}

func fired(w <-chan zk.Event) (zk.Event, bool) {
	select {
	case ev, ok := <-w:
		return ev, ok
	default:
		return zk.Event{}, false
	}
}

// offer sends the merged config of the parts as read, unless neither part
// changed since the last message. It reports false when the read is older
// than what was sent: the parts are read again after a sync.
func (sub *subscription) offer() bool {
	cfg := merged(sub.service, sub.process, sub.svc, sub.ov)
	if last := sub.last; last != nil {
		if identity(cfg.ServiceRecord) == identity(last.ServiceRecord) && identity(cfg.Override) == identity(last.Override) {
			return true
		}
		if cfg.Revision <= last.Revision {
			// ZooKeeper should make this impossible: a client reconnects
			// only to a server as recent as what it has seen, and a new
			// session is created by a transaction ordered after every
			// write read before. Never send it all the same.
			sub.log.Warn("read a config older than the one sent: reading again after a sync",
				"revision", cfg.Revision, "sent", last.Revision)
			sub.readSvc, sub.readOv, sub.resync = true, sub.process != "", true
			return false
		}
	}
	if cfg.Error != "" {
		sub.log.Warn("a config znode holds no usable record: the subscriber keeps the last good config", "err", cfg.Error)
		cfg.Values = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		if sub.lastGood != nil {
			cfg.Values = sub.lastGood
		}
	} else {
		sub.lastGood = cfg.Values
	}
	sub.last = cfg
	// The receiver owns the message it is sent and may edit it; cfg shares
	// its parts with the subscription (a part that did not change is
	// reused by the next Config), so the receiver gets a copy.
	sub.st.system.Root.Send(sub.pid, proto.Clone(cfg))
	return true
}

// identity tells one state of a part from another: the mzxid of the write
// that made it, or 0 for an absent znode.
func identity(p *configv1.Part) int64 {
	if !p.GetExists() {
		return 0
	}
	return p.GetRevision()
}
