package workqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/zkutil"
	workqueuev1 "github.com/zkactor/zkactor/proto/recipes/workqueue/v1"
)

// Sentinel errors for the decisions a caller makes. Everything else is
// wrapped with the operation and the znode path; bad names and keys wrap
// cluster.ErrBadName, oversize payloads cluster.ErrTooLarge.
var (
	// ErrKeyUsed: the idempotency key already names a queued item with
	// another payload.
	ErrKeyUsed = errors.New("workqueue: the key names another item")
	// ErrNotHeld: the item was taken by another taker since this one took
	// it (this taker's session ended, and with it its claim). That taker
	// may do the item again: the queue delivers at least once.
	ErrNotHeld = errors.New("workqueue: the item is held by another taker")
)

// maxProducerLength bounds Options.Producer, in bytes.
const maxProducerLength = 1024

// Options configures a Queue.
type Options struct {
	// Root is the cluster's znode root (default cluster.DefaultRoot).
	Root string
	// Producer names this handle in the items it puts and the claims it
	// makes (default: a random id): valid UTF-8, at most 1024 bytes.
	Producer string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Queue is one handle on the durable queue <root>/queues/<name>. It
// borrows a cluster.Session: its claims are ephemeral znodes of that
// session, so they end with it. A Queue is safe for concurrent use; the
// Takes of one handle run one at a time (see Take).
type Queue struct {
	s        *cluster.Session
	name     string
	root     string // <root>
	dir      string // <root>/queues/<name>
	items    string // <dir>/items
	claims   string // <dir>/claims
	keys     string // <dir>/keys
	waiters  string // <dir>/waiters: the line of waiting Takes (see wait.go)
	producer string
	log      *slog.Logger

	taking chan struct{}   // a token: one Take of this handle at a time
	done   chan struct{}   // closed by Close
	life   context.Context // ends with Close: bounds the handle's own goroutines
	end    context.CancelFunc

	mu      sync.Mutex
	changed chan struct{}     // closed and replaced on every change of items/ or claims/
	strays  map[string]string // item -> token of a take that gave up on its claim, whose outcome may be ours
	bad     map[string]bool   // item names whose data is not an Item: skipped
	junk    map[string]bool   // names under waiters/ that are no waiters: passed over
	closed  bool
	feeders map[*feeder]bool // running feeders: Close gives back what they hold
	// armed: the session whose watch on items/ or claims/ has not fired
	// yet; watchGen counts the watch events of each. go-zookeeper cannot
	// remove a watch, and keeps a channel for every one set: a take that
	// set another while one is armed would grow its memory with every take
	// until the directory next changed (takes and releases change claims/
	// but never items/).
	armed    map[string]int64
	watchGen map[string]uint64
	// predPath: the waiter znode that this handle's data watch is on,
	// set by predSession, until the watch fires; waiterEvents counts the
	// session's watch events below waiters/ (see watchPred).
	predPath     string
	predSession  int64
	waiterEvents uint64
	place        string // where this handle's Take waits: "first", "behind", "" (not waiting)

	stopWatch, stopNotify func()
	wg                    sync.WaitGroup // feeders' goroutines
}

// Open opens the queue name under opts.Root, creating its znodes if they
// do not exist yet. The name must be a valid znode name
// (cluster.ValidateName). Close the Queue when done; the session is the
// caller's.
func Open(ctx context.Context, s *cluster.Session, name string, opts Options) (*Queue, error) {
	if s == nil {
		return nil, fmt.Errorf("open queue %q: no session", name)
	}
	if err := cluster.ValidateName(name); err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	root := opts.Root
	if root == "" {
		root = cluster.DefaultRoot
	}
	if err := cluster.ValidateRoot(root); err != nil {
		return nil, fmt.Errorf("open queue %q: %w", name, err)
	}
	root = strings.TrimSuffix(root, "/")
	// The producer goes into every item and claim: as invalid UTF-8 (a
	// protobuf string) every Put and Take would fail to encode its record,
	// and very long it would make every request too large for ZooKeeper.
	if !utf8.ValidString(opts.Producer) || len(opts.Producer) > maxProducerLength {
		return nil, fmt.Errorf("open queue %q: the producer must be valid UTF-8 of at most %d bytes", name, maxProducerLength)
	}
	if opts.Producer == "" {
		opts.Producer = randomHex(8)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	dir := root + "/queues/" + name
	q := &Queue{
		s: s, name: name, root: root, dir: dir,
		items: dir + "/items", claims: dir + "/claims", keys: dir + "/keys", waiters: dir + "/waiters",
		producer: opts.Producer,
		log:      log.With("queue", name),
		taking:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		feeders:  map[*feeder]bool{},
		armed:    map[string]int64{},
		watchGen: map[string]uint64{},
		changed:  make(chan struct{}),
		strays:   map[string]string{},
		bad:      map[string]bool{},
		junk:     map[string]bool{},
	}
	if err := q.makeDirs(ctx); err != nil {
		return nil, err
	}
	q.life, q.end = context.WithCancel(context.Background())
	// Watch events of items/ and claims/ (the first waiter's) and of a
	// waiter znode (the one before a waiting Take's) wake waiting Takes; so
	// does a new session (the old one's watches are gone with it). Neither
	// blocks.
	q.stopWatch = s.OnWatchEvent(func(ev zk.Event) {
		switch {
		case ev.Path == q.items || ev.Path == q.claims:
			q.mu.Lock()
			q.watchGen[ev.Path]++ // the session's watch on it has fired
			delete(q.armed, ev.Path)
			q.mu.Unlock()
			q.wake()
		case strings.HasPrefix(ev.Path, q.waiters+"/"):
			q.mu.Lock()
			q.waiterEvents++
			if ev.Path == q.predPath {
				q.predPath, q.predSession = "", 0
			}
			q.mu.Unlock()
			q.wake()
		}
	})
	q.stopNotify = s.Notify(func(ev cluster.Event) {
		if ev.Kind == cluster.Connected || ev.Kind == cluster.Expired {
			q.wake()
		}
	})
	return q, nil
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// Close stops the handle: waiting Takes and feeders end, and feeders give
// back the items their consumers hold unanswered (Close waits for that,
// up to the session's RequestTimeout). It does not close the session, and
// leaves the queue's znodes in place. Items taken with Take and not yet
// acknowledged or released stay held until the session ends.
func (q *Queue) Close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	close(q.done)
	q.end()
	q.mu.Unlock()
	q.stopWatch()
	q.stopNotify()
	q.wake()
	q.wg.Wait()
	// Nothing runs on the handle's goroutines now. What the feeders hold
	// and the claims takes gave up on would otherwise hide their items for
	// as long as the session lives, which may be much longer than the handle.
	q.mu.Lock()
	feeders := make([]*feeder, 0, len(q.feeders))
	for f := range q.feeders {
		feeders = append(feeders, f)
	}
	clear(q.feeders)
	q.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), q.s.RequestTimeout())
	defer cancel()
	for _, f := range feeders {
		f.giveBack(ctx)
	}
	q.removeStrays(ctx)
}

// spawn runs fn on a goroutine that Close waits for, unless the Queue is
// closed (then it returns cluster.ErrClosed).
func (q *Queue) spawn(fn func()) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return cluster.ErrClosed
	}
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		fn()
	}()
	return nil
}

func (q *Queue) addFeeder(f *feeder) {
	q.mu.Lock()
	q.feeders[f] = true
	q.mu.Unlock()
}

func (q *Queue) removeFeeder(f *feeder) {
	q.mu.Lock()
	delete(q.feeders, f)
	q.mu.Unlock()
}

func (q *Queue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// wake wakes every Take waiting for a change.
func (q *Queue) wake() {
	q.mu.Lock()
	close(q.changed)
	q.changed = make(chan struct{})
	q.mu.Unlock()
}

func (q *Queue) nextChange() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.changed
}

// makeDirs creates items/, claims/ and keys/ (persistent), and what is
// missing above them.
func (q *Queue) makeDirs(ctx context.Context) error {
	for _, p := range []string{q.items, q.claims, q.keys} {
		err := q.s.Do(ctx, cluster.Op{Name: "create", Path: p, Idempotent: true}, func(c *zk.Conn) error {
			_, err := zkutil.CreateWithParents(c, q.root, p, nil, 0, q.s.ACL())
			return err
		})
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("open queue %q: %w", q.name, err)
		}
	}
	return nil
}

// Put adds payload to the queue under the idempotency key and returns the
// item's id ("<key>-<seq>") once ZooKeeper has it. Items are taken oldest
// first, so the items of one producer that puts one at a time are taken in
// the order it put them.
//
// The key makes a Put safe to retry: while an item with that key is queued
// or held, another Put with the same key and payload returns that item's id
// and enqueues nothing (with another payload: ErrKeyUsed); a Put whose
// first attempt was applied but whose reply was lost finds the item where
// the attempt left it, so a producer's order holds across retries. A Put
// of a key whose item was already acknowledged may return "" (the key was
// seen just before the Ack) or enqueue the payload again. An empty key is
// replaced by a random one. The key must be a valid znode name of at most
// MaxKeyLength bytes, not ending in '-' (else an error wrapping
// cluster.ErrBadName); a payload over MaxPayloadSize is refused with an
// error wrapping cluster.ErrTooLarge.
func (q *Queue) Put(ctx context.Context, key string, payload []byte) (string, error) {
	if key == "" {
		key = randomHex(16)
	}
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("put on queue %q: %w", q.name, err)
	}
	if len(payload) > MaxPayloadSize {
		return "", fmt.Errorf("put on queue %q: payload of %d bytes (the limit is %d): %w", q.name, len(payload), MaxPayloadSize, cluster.ErrTooLarge)
	}
	data, err := proto.Marshal(&workqueuev1.Item{Payload: payload, Producer: q.producer, PutAt: timestamppb.Now(), Key: key})
	if err != nil {
		return "", fmt.Errorf("put on queue %q: %w", q.name, err)
	}
	keyPath := q.keys + "/" + key
	for attempt := 0; ; attempt++ {
		var created string
		// One multi: the key's znode and the item, or neither. A retry of a
		// multi that was applied meets the key and finds the item below.
		err := q.s.Do(ctx, cluster.Op{Name: "put", Path: q.items + "/" + key + "-", Idempotent: true}, func(c *zk.Conn) error {
			res, err := c.Multi(
				&zk.CreateRequest{Path: keyPath, Acl: q.s.ACL()},
				&zk.CreateRequest{Path: q.items + "/" + key + "-", Data: data, Acl: q.s.ACL(), Flags: zk.FlagSequence},
			)
			if err == nil && len(res) == 2 {
				created = res[1].String
			}
			return err
		})
		switch {
		case err == nil:
			return created[strings.LastIndexByte(created, '/')+1:], nil
		case errors.Is(err, zk.ErrNodeExists):
			id, err := q.findKey(ctx, key, payload)
			if errors.Is(err, errOrphanKey) && attempt == 0 {
				continue
			}
			return id, err
		case errors.Is(err, zk.ErrNoNode) && attempt == 0:
			// Someone deleted the queue's znodes: make them again.
			if err := q.makeDirs(ctx); err != nil {
				return "", err
			}
		default:
			return "", fmt.Errorf("put on queue %q: %w", q.name, err)
		}
	}
}

// errOrphanKey: a key's znode without an item (made by another client):
// it was deleted, and the Put tries again.
var errOrphanKey = errors.New("orphan key")

// findKey returns the id of the queued item that key names, checking that
// its payload is payload.
func (q *Queue) findKey(ctx context.Context, key string, payload []byte) (string, error) {
	names, err := q.children(ctx, q.items, false)
	if err != nil {
		return "", fmt.Errorf("put on queue %q: %w", q.name, err)
	}
	items, _ := order(names)
	for _, n := range items {
		if k, _, _ := parseItem(n); k != key {
			continue
		}
		data, _, err := q.get(ctx, q.items+"/"+n)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("put on queue %q: %w", q.name, err)
		}
		it := &workqueuev1.Item{}
		if err := proto.Unmarshal(data, it); err != nil || string(it.Payload) != string(payload) {
			return "", fmt.Errorf("put on queue %q: key %q: %w", q.name, key, ErrKeyUsed)
		}
		return n, nil
	}
	// No item: acknowledged since the key was seen (Ack removes both at
	// once), or the key's znode is another client's. Which one, its
	// existence now tells.
	keyPath := q.keys + "/" + key
	var stat *zk.Stat
	err = q.s.Do(ctx, cluster.Op{Name: "exists", Path: keyPath, Idempotent: true}, func(c *zk.Conn) error {
		var err error
		_, stat, err = c.Exists(keyPath)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("put on queue %q: %w", q.name, err)
	}
	if stat == nil {
		return "", nil // acknowledged
	}
	q.log.Warn("deleting a key znode that names no item", "path", keyPath)
	err = q.s.Do(ctx, cluster.Op{Name: "delete", Path: keyPath, Idempotent: true}, func(c *zk.Conn) error {
		return zkutil.Delete(c, keyPath, stat.Version)
	})
	if err != nil && !errors.Is(err, zk.ErrBadVersion) {
		return "", fmt.Errorf("put on queue %q: %w", q.name, err)
	}
	return "", errOrphanKey
}

// children lists dir; with watch, it leaves a watch on dir that wakes
// the waiting takes when it fires, setting one only if none is armed.
func (q *Queue) children(ctx context.Context, dir string, watch bool) ([]string, error) {
	var (
		names   []string
		session int64
	)
	q.mu.Lock()
	gen := q.watchGen[dir]
	if id := q.s.ID(); watch && id != 0 && q.armed[dir] == id {
		watch = false // the armed watch wakes us
	}
	q.mu.Unlock()
	err := q.s.Do(ctx, cluster.Op{Name: "get children", Path: dir, Idempotent: true}, func(c *zk.Conn) error {
		var err error
		if watch {
			before := c.SessionID()
			names, _, _, err = c.ChildrenW(dir)
			if c.SessionID() == before {
				session = before
			}
		} else {
			names, _, err = c.Children(dir)
		}
		return err
	})
	if err != nil {
		return nil, err // fn may still be writing names
	}
	if watch && session != 0 {
		q.mu.Lock()
		if q.watchGen[dir] == gen { // else it may have fired already
			q.armed[dir] = session
		}
		q.mu.Unlock()
	}
	return names, nil
}

func (q *Queue) get(ctx context.Context, p string) ([]byte, *zk.Stat, error) {
	var (
		data []byte
		stat *zk.Stat
	)
	err := q.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(c *zk.Conn) error {
		var err error
		data, stat, err = c.Get(p)
		return err
	})
	if err != nil {
		return nil, nil, err // fn may still be writing data and stat
	}
	return data, stat, nil
}

// backoff is the wait before the attempt after n failed ones.
func backoff(n int) time.Duration {
	return min(100*time.Millisecond<<min(n, 6), 5*time.Second)
}
