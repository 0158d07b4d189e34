package workqueue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/plumbing"
	workqueuev1 "github.com/zkactor/zkactor/proto/recipes/workqueue/v1"
)

// Item is one item taken from a queue: held by its taker until Ack (done)
// or Release (given back), or until the taker's session ends.
type Item struct {
	ID       string    // the item's znode name, "<key>-<seq>"
	Key      string    // its idempotency key
	Payload  []byte    // the producer's bytes
	Producer string    // who put it (Options.Producer)
	PutAt    time.Time // when
	Attempts int       // takes so far, this one included: above 1, an earlier taker did not acknowledge it

	version int32 // the item znode's version after this take: only this take's Ack matches it
	session int64 // the session whose claim holds it
}

// maxBad bounds the remembered names of undecodable items.
const maxBad = 1024

// Take takes the oldest item nobody holds, waiting (on a watch, without
// polling) until there is one or ctx ends. The item is held by this
// session's ephemeral claim: until Ack, Release, or the session's end,
// after which the next taker gets it again (at least once).
//
// Takes of one Queue handle run one at a time, so a process's waiting
// takers make one reader per handle, not one each. A Take that finds
// nothing joins the queue's line of waiters (an ephemeral sequential znode
// under waiters/): only the first in line watches items/ and claims/, each
// other one watches the waiter before it, so a put wakes one handle, not
// every waiting one (see the package documentation, "Waiting"). Children of
// items/ that are not items, and items whose data is not an Item record,
// are skipped (and logged once).
func (q *Queue) Take(ctx context.Context) (*Item, error) {
	select {
	case q.taking <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("take from queue %q: %w", q.name, ctx.Err())
	}
	defer func() { <-q.taking }()
	w := &waiter{}
	defer func() {
		q.leave(w)
		q.mu.Lock()
		q.place = ""
		q.mu.Unlock()
	}()
	for {
		if q.isClosed() {
			return nil, fmt.Errorf("take from queue %q: %w", q.name, cluster.ErrClosed)
		}
		changed := q.nextChange()
		if w.path == "" || w.first {
			// Not in line yet: one look, leaving no watch. First in line:
			// look, leaving watches on items/ and claims/.
			it, err := q.tryTake(ctx, w.first)
			if err != nil || it != nil {
				return it, err
			}
		}
		wasFirst, was := w.first, w.path
		if err := q.queueUp(ctx, w); err != nil {
			return nil, fmt.Errorf("take from queue %q: %w", q.name, err)
		}
		if w.first && (!wasFirst || w.path != was) {
			continue // first now (or again, on a new session): look again, with watches, before waiting
		}
		q.mu.Lock()
		q.place = w.place()
		q.mu.Unlock()
		select {
		case <-changed:
		case <-q.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("take from queue %q: %w", q.name, ctx.Err())
		}
	}
}

// tryTake takes the oldest free item, or returns nil when there is none
// (with watch, leaving watches on items/ and, when it holds items,
// claims/).
func (q *Queue) tryTake(ctx context.Context, watch bool) (*Item, error) {
	q.removeStrays(ctx)
	names, err := q.children(ctx, q.items, watch)
	if errors.Is(err, zk.ErrNoNode) {
		if err = q.makeDirs(ctx); err == nil {
			names, err = q.children(ctx, q.items, watch)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("take from queue %q: %w", q.name, err)
	}
	items, others := order(names)
	for _, n := range others {
		q.skip(n, "not an item's name")
	}
	if len(items) == 0 {
		return nil, nil
	}
	claimed, err := q.children(ctx, q.claims, watch)
	if errors.Is(err, zk.ErrNoNode) {
		// Someone deleted claims/ (no claim can be made without it): make
		// it again.
		if err = q.makeDirs(ctx); err == nil {
			claimed, err = q.children(ctx, q.claims, watch)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("take from queue %q: %w", q.name, err)
	}
	held := make(map[string]bool, len(claimed))
	for _, n := range claimed {
		held[n] = true
	}
	for _, n := range items {
		if held[n] || q.isBad(n) {
			continue
		}
		it, err := q.claim(ctx, n)
		if err != nil || it != nil {
			return it, err
		}
	}
	return nil, nil
}

// claim takes the item name if nobody holds it: one multi that bumps the
// item's version (recording the take) and creates the ephemeral claim. The
// version it leaves is this take's: Ack and Release check it.
func (q *Queue) claim(ctx context.Context, name string) (*Item, error) {
	itemPath, claimPath := q.items+"/"+name, q.claims+"/"+name
	data, stat, err := q.get(ctx, itemPath)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil // acknowledged meanwhile
	}
	if errors.Is(err, zk.ErrNoAuth) {
		q.skip(name, "this session may not read it")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("take from queue %q: %w", q.name, err)
	}
	rec := &workqueuev1.Item{}
	if err := proto.Unmarshal(data, rec); err != nil {
		q.skip(name, "its data is not an Item: "+err.Error())
		return nil, nil
	}
	if key, _, _ := parseItem(name); rec.Key != key {
		q.skip(name, fmt.Sprintf("its record names the key %q", rec.Key))
		return nil, nil
	}
	rec.Attempts++
	next, err := proto.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("take from queue %q: %w", q.name, err)
	}
	token := randomHex(8)
	claim, err := proto.Marshal(&workqueuev1.Claim{Taker: q.producer + "/" + token, TakenAt: timestamppb.Now()})
	if err != nil {
		return nil, fmt.Errorf("take from queue %q: %w", q.name, err)
	}
	// A caller that gives up before the reply leaves a claim that may be
	// ours: it is removed at once (and by the next take if that fails). A
	// multi the server refused made nothing. The stray is this take's
	// token's, not the name's: a later take of the same item by this
	// handle may hold it by then, and its claim is not a stray.
	late := func(err error) {
		if err == nil || isTransient(err) {
			q.addStray(name, token)
			q.sweepStrays()
		}
	}
	var session int64 // read only when the request's outcome is known
	err = plumbing.DoLate(ctx, q.s, "claim", claimPath, late, func(c *zk.Conn) error {
		before := c.SessionID()
		res, err := c.Multi(
			&zk.SetDataRequest{Path: itemPath, Data: next, Version: stat.Version},
			&zk.CreateRequest{Path: claimPath, Data: claim, Acl: q.s.ACL(), Flags: zk.FlagEphemeral},
		)
		if c.SessionID() == before {
			session = before
		}
		if err != nil && failed(res) == 0 {
			return &opError{op: "item", err: err}
		}
		return err
	})
	var failure *opError
	switch {
	case err == nil:
	case errors.Is(err, zk.ErrNodeExists), errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNoNode):
		return nil, nil // another taker was first, or it was acknowledged
	case errors.Is(err, zk.ErrNoAuth) && errors.As(err, &failure):
		// Another client's item that this session may read but not write:
		// failing the Take would wedge every taker on it (it is the oldest).
		// (A claim refused is claims/'s ACL: every item's, an error.)
		q.skip(name, "this session may not take it")
		return nil, nil
	case ctx.Err() == nil && isTransient(err):
		// Unknown outcome: once connected again, the claim tells.
		ours, err := q.ownClaim(ctx, name, token)
		if err != nil {
			q.addStray(name, token)
			return nil, fmt.Errorf("take from queue %q: %w", q.name, err)
		}
		if ours == 0 {
			return nil, nil
		}
		session = ours
	default:
		if isTransient(err) {
			q.addStray(name, token)
		}
		return nil, fmt.Errorf("take from queue %q: %w", q.name, err)
	}
	return &Item{
		ID: name, Key: rec.Key, Payload: rec.Payload, Producer: rec.Producer,
		PutAt: rec.PutAt.AsTime(), Attempts: int(rec.Attempts), version: stat.Version + 1, session: session,
	}, nil
}

// ownClaim returns the session that owns the claim of name if the take
// with token made it and that session is the current one; 0 otherwise.
func (q *Queue) ownClaim(ctx context.Context, name, token string) (int64, error) {
	data, stat, err := q.get(ctx, q.claims+"/"+name)
	if errors.Is(err, zk.ErrNoNode) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	c := &workqueuev1.Claim{}
	if proto.Unmarshal(data, c) != nil || c.Taker != q.producer+"/"+token || stat.EphemeralOwner != q.s.ID() {
		return 0, nil
	}
	return stat.EphemeralOwner, nil
}

func isTransient(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrSessionMoved) ||
		errors.Is(err, cluster.ErrNotConnected)
}

// addStray records that the take with token may have left a claim on
// name.
func (q *Queue) addStray(name, token string) {
	q.mu.Lock()
	q.strays[name] = token
	q.mu.Unlock()
}

// sweepStrays removes the strays on a goroutine of the queue's, so that a
// claim a take gave up on does not hide its item until the next take of
// this handle (there may be none: a feeder that stopped).
func (q *Queue) sweepStrays() {
	_ = q.spawn(func() { // closed: Close sweeps
		ctx, cancel := context.WithTimeout(q.life, q.s.RequestTimeout())
		defer cancel()
		q.removeStrays(ctx)
	})
}

// removeStrays deletes the claims that takes which gave up may have left,
// if this session owns them and the take that gave up made them (its
// token): a claim on the same item by a later take of this handle is not
// touched.
func (q *Queue) removeStrays(ctx context.Context) {
	q.mu.Lock()
	strays := make(map[string]string, len(q.strays))
	for n, token := range q.strays {
		strays[n] = token
	}
	q.mu.Unlock()
	for n, token := range strays {
		p := q.claims + "/" + n
		data, stat, err := q.get(ctx, p)
		if err == nil {
			c := &workqueuev1.Claim{}
			if proto.Unmarshal(data, c) == nil && stat.EphemeralOwner == q.s.ID() && c.Taker == q.producer+"/"+token {
				err = q.s.Do(ctx, cluster.Op{Name: "delete", Path: p, Idempotent: true}, func(conn *zk.Conn) error {
					err := conn.Delete(p, stat.Version)
					if errors.Is(err, zk.ErrNoNode) {
						return nil
					}
					return err
				})
			}
		}
		if err == nil || errors.Is(err, zk.ErrNoNode) {
			q.mu.Lock()
			if q.strays[n] == token {
				delete(q.strays, n)
			}
			q.mu.Unlock()
		}
	}
}

// skip logs, once, a child of items/ that is passed over.
func (q *Queue) skip(name, why string) {
	if q.firstTime(q.bad, name) {
		q.log.Warn("skipping a znode among the items", "path", q.items+"/"+name, "why", why)
	}
}

// firstTime records name in seen, one of the handle's sets of znodes
// passed over, and reports whether it was not there yet. A set holds at
// most maxBad names: a full one is emptied, so a flood of junk is logged
// again now and then rather than kept without bound.
func (q *Queue) firstTime(seen map[string]bool, name string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if seen[name] {
		return false
	}
	if len(seen) >= maxBad {
		clear(seen)
	}
	seen[name] = true
	return true
}

func (q *Queue) isBad(name string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bad[name]
}

// Ack removes a taken item from the queue, with its claim and key, in one
// multi that checks the item is still as this take left it. It returns nil
// when the item is gone (acknowledged, also by an earlier Ack whose reply
// was lost), and ErrNotHeld when another taker has taken it since (this
// session ended, its claim with it): that taker may do it again. If this
// session's claim is gone but nobody took the item since, the Ack still
// removes it.
func (q *Queue) Ack(ctx context.Context, it *Item) error {
	if it == nil {
		return fmt.Errorf("ack on queue %q: no item", q.name)
	}
	itemPath, claimPath, keyPath := q.items+"/"+it.ID, q.claims+"/"+it.ID, q.keys+"/"+it.Key
	withClaim, withKey := true, true
	for {
		ops := []any{&zk.DeleteRequest{Path: itemPath, Version: it.version}}
		what := []string{"item"}
		if withClaim {
			ops = append(ops, &zk.DeleteRequest{Path: claimPath, Version: -1})
			what = append(what, "claim")
		}
		if withKey {
			ops = append(ops, &zk.DeleteRequest{Path: keyPath, Version: -1})
			what = append(what, "key")
		}
		err := q.s.Do(ctx, cluster.Op{Name: "ack", Path: itemPath, Idempotent: true}, func(c *zk.Conn) error {
			res, err := c.Multi(ops...)
			if i := failed(res); err != nil && i >= 0 {
				return &opError{op: what[i], err: err}
			}
			return err
		})
		if err == nil {
			return nil
		}
		var failure *opError
		if !errors.As(err, &failure) {
			return fmt.Errorf("ack on queue %q: %w", q.name, err)
		}
		switch {
		case failure.op == "item" && errors.Is(err, zk.ErrNoNode):
			return nil // acknowledged already
		case failure.op == "item" && errors.Is(err, zk.ErrBadVersion):
			return fmt.Errorf("ack %s: %w", itemPath, ErrNotHeld)
		case failure.op == "claim" && errors.Is(err, zk.ErrNoNode):
			withClaim = false // our session ended; nobody took the item since
			continue
		case failure.op == "key" && errors.Is(err, zk.ErrNoNode):
			withKey = false // another client deleted it
			continue
		}
		return fmt.Errorf("ack on queue %q: %w", q.name, err)
	}
}

// opError is the error of a multi, with the op that failed it.
type opError struct {
	op  string // "item", "claim" or "key"
	err error
}

func (e *opError) Error() string { return e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// failed returns the index of the op that failed a multi, -1 if none is
// known: the first with an error (those before it succeeded, those after
// it report a runtime inconsistency).
func failed(res []zk.MultiResponse) int {
	for i, r := range res {
		if r.Error != nil {
			return i
		}
	}
	return -1
}

// Release gives a taken item back: its claim is deleted, if the item is
// still as this take left it, and the next Take gets it. Releasing an item
// that is no longer held (acknowledged, released, or taken by another
// since) does nothing.
func (q *Queue) Release(ctx context.Context, it *Item) error {
	if it == nil {
		return fmt.Errorf("release on queue %q: no item", q.name)
	}
	itemPath, claimPath := q.items+"/"+it.ID, q.claims+"/"+it.ID
	err := q.s.Do(ctx, cluster.Op{Name: "release", Path: claimPath, Idempotent: true}, func(c *zk.Conn) error {
		_, err := c.Multi(
			&zk.CheckVersionRequest{Path: itemPath, Version: it.version},
			&zk.DeleteRequest{Path: claimPath, Version: -1},
		)
		return err
	})
	if err == nil || errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion) {
		return nil
	}
	return fmt.Errorf("release on queue %q: %w", q.name, err)
}
