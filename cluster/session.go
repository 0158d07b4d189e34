package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/metrics"
	"github.com/zkactor/zkactor/internal/plumbing"
	"github.com/zkactor/zkactor/internal/zkutil"
)

// Defaults for Config.
const (
	DefaultSessionTimeout = 4 * time.Second
	DefaultRequestTimeout = 10 * time.Second
)

// DigestAuth holds digest credentials. With them, every znode zkactor
// creates gets an ACL under which only this identity may change or delete
// it, and everyone may read it.
type DigestAuth struct {
	User     string
	Password string
}

// Config configures a Session.
type Config struct {
	// Servers is the ZooKeeper ensemble, "host:port" each. Required.
	Servers []string
	// SessionTimeout is the requested session timeout (default 4s). The
	// server clamps it; Session.Timeout reports the negotiated value.
	SessionTimeout time.Duration
	// RequestTimeout bounds a call whose ctx has no deadline (default 10s),
	// so that nothing waits forever for a ZooKeeper that is down.
	RequestTimeout time.Duration
	// Auth, when set, is added to the connection and used for ACLs.
	Auth *DigestAuth
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
}

// EventKind says what happened to a session.
type EventKind int

const (
	// Connected: the client has a live session again (the first one, the
	// same one after a disconnect, or a new one after an expiry).
	Connected EventKind = iota
	// Disconnected: the connection to the ensemble was lost. The session
	// may still be alive on the servers; ephemerals stay until it expires.
	Disconnected
	// Expired: the session is gone, and with it every ephemeral znode and
	// watch it had. A new session follows (NewSession on the next Connected).
	Expired
	// Paused: this process did not run for a third of the session timeout
	// or more (SIGSTOP, a VM freeze, a stalled machine). The servers may
	// have expired the session meanwhile; SafeUntil, measured on the
	// monotonic clock, tells whether the lease outlived the pause.
	Paused
)

func (k EventKind) String() string {
	switch k {
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Expired:
		return "expired"
	case Paused:
		return "paused"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is a change of the session's state, delivered to the functions
// given to Session.Notify.
type Event struct {
	Kind      EventKind
	SessionID int64
	// NewSession is set on Connected when the session is not the one
	// the client had before (after an expiry). Ephemerals must be re-created.
	NewSession bool
}

// Session owns the ZooKeeper connection of a node whose session holds its
// ephemerals, and the lifetime of that session. The registry, the cache
// and elections borrow it: they issue requests through it and are told
// when the session is lost or replaced. (Watch-only connections of
// internal/zkwatch, the registry keeper's and subscriptions', own no
// ephemerals and are managed by their users.)
//
// go-zookeeper re-establishes a new session by itself after an expiry; the
// Session turns that into an Event{Kind: Connected, NewSession: true} so the
// borrowers can re-create what they own.
type Session struct {
	cfg  Config
	log  *slog.Logger
	conn *zk.Conn
	zkev <-chan zk.Event
	acl  []zk.ACL

	start       time.Time     // monotonic reference for the durations below
	negotiated  atomic.Int64  // negotiated session timeout, ms
	requests    atomic.Int64  // ZooKeeper requests issued
	lastTick    atomic.Int64  // nanoseconds since start at the pause watcher's last tick
	connGen     atomic.Uint64 // counts the connections dialed; identifies the current one
	dialedAt    atomic.Int64  // nanoseconds since start when the current connection was dialed
	lease       lease
	reaper      reaper
	life        context.Context // ends when the Session is closed
	endLife     context.CancelFunc
	netMu       sync.Mutex
	netConn     *gateConn // the last connection dialed, closed by Close
	gateSession int64     // the session last established, for gate.go
	zkConn      atomic.Pointer[zk.Conn]
	closeOnce   sync.Once
	closed      chan struct{}
	wg          sync.WaitGroup // the event goroutine and requests in flight
	queueMu     sync.Mutex
	queue       []queuedEvent
	queueSignal chan struct{}

	mu        sync.Mutex
	connected bool
	counted   bool          // connected as zkactor_session_connected counts it: see countConnected
	ready     chan struct{} // closed while connected with a session
	sessionID int64
	listeners map[int]func(Event)
	// watch events, by listener
	nodeListeners map[int]func(zk.Event)
	nextID        int
}

// Dial connects to ZooKeeper and waits, within ctx, for the first session.
func Dial(ctx context.Context, cfg Config) (*Session, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("zkactor: dial: no ZooKeeper servers given")
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Session{
		cfg:           cfg,
		log:           cfg.Logger,
		start:         time.Now(),
		closed:        make(chan struct{}),
		queueSignal:   make(chan struct{}, 1),
		ready:         make(chan struct{}),
		listeners:     map[int]func(Event){},
		nodeListeners: map[int]func(zk.Event){},
	}
	s.negotiated.Store(cfg.SessionTimeout.Milliseconds())
	s.acl = zk.WorldACL(zk.PermAll)
	if a := cfg.Auth; a != nil {
		s.acl = append(zk.DigestACL(zk.PermAll, a.User, a.Password), zk.WorldACL(zk.PermRead)...)
	}
	s.lease.kick = make(chan struct{}, 1)
	s.life, s.endLife = context.WithCancel(context.Background())
	s.reaper.pending, s.reaper.kick = map[string]int64{}, make(chan struct{}, 1)
	conn, ev, err := zk.Connect(cfg.Servers, cfg.SessionTimeout,
		zk.WithLogger(zkLogger{s}),
		zk.WithDialer(s.dial),
		zk.WithHostProvider(&hostProvider{closed: s.closed}),
		zk.WithEventCallback(s.enqueue),
	)
	if err != nil {
		s.endLife()
		return nil, fmt.Errorf("zkactor: dial %v: %w", cfg.Servers, err)
	}
	s.conn, s.zkev = conn, ev
	s.zkConn.Store(conn)
	s.wg.Add(4)
	go s.eventLoop()
	go s.watchPauses()
	go s.keepLease()
	go s.reap()

	if err := s.waitReady(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("zkactor: dial %v: %w", cfg.Servers, err)
	}
	if a := cfg.Auth; a != nil {
		// go-zookeeper re-sends these credentials on every reconnect.
		if err := conn.AddAuth("digest", []byte(a.User+":"+a.Password)); err != nil {
			s.Close()
			return nil, fmt.Errorf("zkactor: add digest auth for %q: %w", a.User, err)
		}
	}
	return s, nil
}

// Close ends the session: its ephemeral znodes go at once, watches end, and
// every call in flight returns. Close is idempotent.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock() // run adds to wg under mu only while closed is open
		close(s.closed)
		s.mu.Unlock()
		s.endLife()
		s.conn.Close()
		// go-zookeeper notices Close only between reads; a handshake with a
		// server that went silent waits up to ten read timeouts. Closing the
		// socket under it ends that wait.
		s.netMu.Lock()
		if s.netConn != nil {
			_ = s.netConn.Close()
		}
		s.netMu.Unlock()
		for range s.zkev { // closed when go-zookeeper's goroutines are done
		}
		s.wg.Wait()
		s.mu.Lock()
		s.countConnected(false)
		s.mu.Unlock()
	})
}

// Done is closed when the session is closed.
func (s *Session) Done() <-chan struct{} { return s.closed }

// ACL is the ACL zkactor puts on the znodes it creates.
func (s *Session) ACL() []zk.ACL { return s.acl }

// ID is the current ZooKeeper session id (0 while there is none).
func (s *Session) ID() int64 { return s.conn.SessionID() }

// Timeout is the negotiated session timeout (the requested one until the
// server has answered).
func (s *Session) Timeout() time.Duration {
	return time.Duration(s.negotiated.Load()) * time.Millisecond
}

// RequestTimeout is the bound on a request whose ctx has no deadline
// (Config.RequestTimeout).
func (s *Session) RequestTimeout() time.Duration { return s.cfg.RequestTimeout }

// Config is the configuration the session was dialed with, its defaults
// filled in (Servers and Auth are copies). zkactor's own packages use it to
// open a second connection to the same ensemble with the same credentials:
// recipes/subscription speaks the persistent watches of ZooKeeper 3.6+,
// which go-zookeeper lacks, on a connection of its own.
func (s *Session) Config() Config {
	cfg := s.cfg
	cfg.Servers = append([]string(nil), s.cfg.Servers...)
	if a := s.cfg.Auth; a != nil {
		auth := *a
		cfg.Auth = &auth
	}
	return cfg
}

// Conn is the escape hatch to the underlying go-zookeeper connection, for
// what zkactor does not wrap (a multi fenced with a global's
// Elected.Candidate, say). Its requests do not wait for a connection the
// way Do does, and the connection is closed with the Session.
func (s *Session) Conn() *zk.Conn { return s.conn }

// Connected reports whether the client has a live session right now.
func (s *Session) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected
}

// pauseTick is how often the pause watcher looks at the clock.
const pauseTick = 20 * time.Millisecond

// watchPauses notices that the process was not running (its ticks stopped)
// for a third of the session timeout or more.
func (s *Session) watchPauses() {
	defer s.wg.Done()
	t := time.NewTicker(pauseTick)
	defer t.Stop()
	s.lastTick.Store(int64(time.Since(s.start)))
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		now := time.Since(s.start)
		gap := now - time.Duration(s.lastTick.Swap(int64(now)))
		if gap > s.Timeout()/3 {
			s.log.Warn("this process was paused; ZooKeeper may have expired its session", "pause", gap.Round(time.Millisecond))
			metrics.SessionPaused()
			s.emit(Event{Kind: Paused, SessionID: s.ID()})
		}
	}
}

func (s *Session) emit(ev Event) {
	s.mu.Lock()
	fns := make([]func(Event), 0, len(s.listeners))
	for _, fn := range s.listeners {
		fns = append(fns, fn)
	}
	s.mu.Unlock()
	for _, fn := range fns {
		fn(ev)
	}
}

// Notify calls fn for every later session event, in order, on the
// session's own goroutine: fn must not block (hand work to a goroutine you
// own). The returned function stops the notifications.
func (s *Session) Notify(fn func(Event)) (stop func()) {
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.listeners[id] = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.listeners, id)
		s.mu.Unlock()
	}
}

// queuedEvent is a session event with the dial time of the connection it
// happened on.
type queuedEvent struct {
	zk.Event
	dialedAt time.Duration
}

// OnWatchEvent calls fn with every watch event of the session (a znode
// created, deleted or changed, a watch ended), whoever set the watch, on
// go-zookeeper's own goroutine: fn must not block. One callback serves
// every watch, however many there are, so that caches need no goroutine
// per watch. stop ends the calls.
func (s *Session) OnWatchEvent(fn func(zk.Event)) (stop func()) {
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.nodeListeners[id] = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.nodeListeners, id)
		s.mu.Unlock()
	}
}

// enqueue is go-zookeeper's event callback. It runs on the connection's own
// goroutine, so it only queues the event for eventLoop. That goroutine also
// dials, so the current dial time is that of the connection the event is
// about: a StateHasSession means that connection's handshake succeeded.
func (s *Session) enqueue(ev zk.Event) {
	if ev.Type != zk.EventSession {
		s.mu.Lock()
		fns := make([]func(zk.Event), 0, len(s.nodeListeners))
		for _, fn := range s.nodeListeners {
			fns = append(fns, fn)
		}
		s.mu.Unlock()
		for _, fn := range fns {
			fn(ev)
		}
		return
	}
	s.queueMu.Lock()
	if ev.State == zk.StateHasSession {
		// go-zookeeper has set its session id before this event; s.conn
		// is nil only during the first connection, which is a new session.
		var id int64
		if c := s.zkConn.Load(); c != nil {
			id = c.SessionID()
		}
		s.netMu.Lock()
		if s.netConn != nil && id != 0 && id == s.gateSession {
			s.netConn.sessionReopened() // see gate.go
		}
		s.gateSession = id
		s.netMu.Unlock()
	}
	s.queue = append(s.queue, queuedEvent{ev, time.Duration(s.dialedAt.Load())})
	s.queueMu.Unlock()
	select {
	case s.queueSignal <- struct{}{}:
	default:
	}
}

func (s *Session) eventLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.closed:
			return
		case <-s.queueSignal:
		}
		s.queueMu.Lock()
		batch := s.queue
		s.queue = nil
		s.queueMu.Unlock()
		for _, ev := range batch {
			s.handle(ev)
		}
	}
}

func (s *Session) handle(qe queuedEvent) {
	ev := qe.Event
	var out *Event
	s.mu.Lock()
	switch ev.State {
	case zk.StateHasSession:
		id := s.conn.SessionID()
		// The handshake created the session or had the quorum leader renew
		// it, after the connection was dialed: see lease.go.
		s.renewLease(id, qe.dialedAt)
		s.netMu.Lock()
		s.gateSession = id // the first one, which enqueue could not see
		s.netMu.Unlock()
		if !s.connected || id != s.sessionID {
			out = &Event{Kind: Connected, SessionID: id, NewSession: id != s.sessionID}
			s.connected, s.sessionID = true, id
			close(s.ready)
			select { // the reaper's turn
			case s.reaper.kick <- struct{}{}:
			default:
			}
		}
	case zk.StateDisconnected, zk.StateConnecting:
		if s.connected {
			s.connected = false
			s.ready = make(chan struct{})
			out = &Event{Kind: Disconnected, SessionID: s.sessionID}
		}
	case zk.StateExpired:
		s.expireLease(s.sessionID)
		if s.connected {
			s.connected = false
			s.ready = make(chan struct{})
		}
		out = &Event{Kind: Expired, SessionID: s.sessionID}
	case zk.StateAuthFailed:
		s.log.Error("zookeeper authentication failed", "server", ev.Server)
	}
	s.countConnected(s.connected)
	s.mu.Unlock()
	if out == nil {
		return
	}
	switch out.Kind {
	case Disconnected:
		metrics.SessionDisconnected()
	case Expired:
		metrics.SessionExpired()
	}
	s.log.Info("zookeeper session "+out.Kind.String(), "session", fmt.Sprintf("%#x", out.SessionID),
		"new", out.NewSession, "server", ev.Server, "timeout", s.Timeout())
	s.emit(*out)
}

// countConnected keeps zkactor_session_connected in step with the
// session's state, counting a closed session as disconnected for good.
// s.mu is held.
func (s *Session) countConnected(up bool) {
	if up && isClosed(s.closed) || up == s.counted {
		return
	}
	s.counted = up
	metrics.SessionConnected(up)
}

// waitReady waits until the client has a session, ctx ends or the session
// is closed.
func (s *Session) waitReady(ctx context.Context) error {
	s.mu.Lock()
	ready := s.ready
	s.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-s.closed:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotConnected, context.Cause(ctx))
	}
}

func transient(err error) bool { return zkutil.IsTransient(err) }

// Op describes one request for Session.Do: what it is for, in error messages.
type Op struct {
	Name string // e.g. "create"
	Path string
	// Idempotent requests are retried after a reconnect within ctx.
	Idempotent bool

	// late, if set, is called with the request's outcome when the caller
	// gave up (ctx ended) before it arrived (internal/plumbing.DoLate).
	late func(error)
}

func init() {
	plumbing.DoLate = func(ctx context.Context, session any, name, path string, late func(error), fn func(*zk.Conn) error) error {
		return session.(*Session).Do(ctx, Op{Name: name, Path: path, late: late}, fn)
	}
	plumbing.Requests = func(session any) int64 { return session.(*Session).requests.Load() }
	plumbing.Settled = func(registry any) bool { return registry.(*Registry).keeper.settled() }
}

// Do runs fn, one ZooKeeper request, on the connection once the client has
// a session, waiting at most until ctx ends (or RequestTimeout when ctx has
// no deadline). The error names the operation and the path.
//
// When Do returns an error because ctx ended, fn may still be running on
// the session's goroutine: a caller must not read what fn writes unless Do
// returned nil or fn's own error.
func (s *Session) Do(ctx context.Context, op Op, fn func(*zk.Conn) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.RequestTimeout)
		defer cancel()
	}
	for {
		if err := s.waitReady(ctx); err != nil {
			return fmt.Errorf("%s %s: %w", op.Name, op.Path, err)
		}
		begin := time.Now()
		err := s.run(ctx, fn, op.late)
		metrics.Request(op.Name, time.Since(begin), err)
		if err == nil {
			return nil
		}
		if op.Idempotent && transient(err) && ctx.Err() == nil {
			continue
		}
		if errors.Is(err, zk.ErrConnectionClosed) && isClosed(s.closed) {
			err = ErrClosed
		}
		return fmt.Errorf("%s %s: %w", op.Name, op.Path, err)
	}
}

// run executes fn on a goroutine the session owns, so that the caller can
// stop waiting when ctx ends; go-zookeeper's calls take no context.
func (s *Session) run(ctx context.Context, fn func(*zk.Conn) error, late func(error)) error {
	s.requests.Add(1)
	var (
		mu        sync.Mutex
		abandoned bool
	)
	done := make(chan error, 1)
	// Never Add once Close may be waiting (a WaitGroup's Add racing its
	// Wait): a request after Close fails as on a closed connection.
	s.mu.Lock()
	if isClosed(s.closed) {
		s.mu.Unlock()
		return zk.ErrConnectionClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	// The outcome goes to exactly one of the two: the caller (through done)
	// or late. Deciding and handing over under one lock closes the gap in
	// which a reply that came as the caller gave up reached neither.
	go func() {
		defer s.wg.Done()
		err := fn(s.conn)
		mu.Lock()
		gone := abandoned
		if !gone {
			done <- err // buffered: the caller takes it, now or when it checks below
		}
		mu.Unlock()
		if gone && late != nil {
			late(err)
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		mu.Lock()
		abandoned = true
		select {
		case err := <-done: // it finished in the meantime: its result counts
			mu.Unlock()
			return err
		default:
		}
		mu.Unlock()
		if late != nil {
			err := fmt.Errorf("no reply in time (%w): %w", plumbing.ErrLate, context.Cause(ctx))
			if !s.Connected() {
				err = fmt.Errorf("%w: %w", ErrNotConnected, err)
			}
			return err
		}
		if !s.Connected() {
			return fmt.Errorf("%w: %w", ErrNotConnected, context.Cause(ctx))
		}
		return fmt.Errorf("no reply in time: %w", context.Cause(ctx))
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// dial is go-zookeeper's Dialer. It numbers the connections and notes when
// each was dialed, for the lease (lease.go).
func (s *Session) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	s.dialedAt.Store(int64(time.Since(s.start)))
	s.connGen.Add(1)
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	gc := newGateConn(c, s.closed)
	s.netMu.Lock()
	s.netConn = gc
	s.netMu.Unlock()
	return gc, nil
}

// zkLogger routes go-zookeeper's log lines to slog at Debug and picks the
// negotiated session timeout out of them: go-zookeeper has no API for it.
type zkLogger struct{ s *Session }

func (l zkLogger) Printf(format string, args ...any) {
	if format == "authenticated: id=%d, timeout=%d" && len(args) == 2 {
		if ms, ok := args[1].(int32); ok && ms > 0 {
			l.s.negotiated.Store(int64(ms))
		}
	}
	l.s.log.Debug("zk: " + fmt.Sprintf(format, args...))
}

// hostProvider walks the servers in a shuffled ring. When it has tried
// them all without success it pauses briefly itself and never reports a
// wrap-around, so go-zookeeper does not add its fixed one-second sleep:
// after a server restart or a leader election the client is back within
// about 100 ms of the ensemble.
type hostProvider struct {
	closed  <-chan struct{} // the session's: once closed, report a wrap-around so go-zookeeper sees Close
	mu      sync.Mutex
	servers []string
	next    int
	tried   int
}

const reconnectPause = 100 * time.Millisecond

func (h *hostProvider) Init(servers []string) error {
	h.servers = append([]string(nil), servers...)
	rand.Shuffle(len(h.servers), func(i, j int) { h.servers[i], h.servers[j] = h.servers[j], h.servers[i] })
	return nil
}

func (h *hostProvider) Len() int { return len(h.servers) }

func (h *hostProvider) Next() (string, bool) {
	h.mu.Lock()
	pause := h.tried >= len(h.servers)
	if pause {
		h.tried = 0
	}
	server := h.servers[h.next]
	h.next = (h.next + 1) % len(h.servers)
	h.tried++
	h.mu.Unlock()
	if pause {
		time.Sleep(reconnectPause) // runs on go-zookeeper's connect goroutine, between attempts
	}
	// go-zookeeper checks for Close only on a wrap-around; while every
	// dial is refused it would otherwise loop for ever after Close.
	return server, isClosed(h.closed)
}

func (h *hostProvider) Connected() {
	h.mu.Lock()
	h.tried = 0
	h.mu.Unlock()
}
