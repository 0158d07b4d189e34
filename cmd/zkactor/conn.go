package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// sessionTimeout is what the command asks ZooKeeper for. It only bounds how
// long a silent server keeps a request waiting (go-zookeeper drops the
// connection after 2/3 of it); the command holds no ephemeral znodes.
const sessionTimeout = 10 * time.Second

// client is the command's read-only ZooKeeper connection. It never writes:
// it only calls Exists, Get, GetW, Children, ChildrenW and GetACL.
type client struct {
	conn    *zk.Conn
	events  <-chan zk.Event
	servers []string
	log     *zkLogger
	watches *watches // nil unless following changes
}

// dial connects to servers and waits for a session, at most timeout. The
// error says which servers did not answer and the last thing go-zookeeper
// reported (typically the dial error).
func dial(ctx context.Context, servers []string, timeout time.Duration, verbose io.Writer, w *watches) (*client, error) {
	log := &zkLogger{echo: verbose}
	callback := func(zk.Event) {}
	if w != nil {
		callback = w.event
	}
	conn, events, err := zk.Connect(servers, sessionTimeout, zk.WithLogger(log), zk.WithEventCallback(callback))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(servers, ","), err)
	}
	c := &client{conn: conn, events: events, servers: servers, log: log, watches: w}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev := <-events:
			switch ev.State {
			case zk.StateHasSession:
				return c, nil
			case zk.StateAuthFailed:
				c.close()
				return nil, fmt.Errorf("connect to %s: authentication failed", strings.Join(servers, ","))
			}
		case <-timer.C:
			c.close()
			msg := fmt.Sprintf("no ZooKeeper server answered at %s within %v", strings.Join(servers, ","), timeout)
			if last := log.last(); last != "" {
				msg += " (last: " + last + ")"
			}
			return nil, errors.New(msg)
		case <-ctx.Done():
			c.close()
			return nil, fmt.Errorf("connect to %s: %w", strings.Join(servers, ","), context.Cause(ctx))
		}
	}
}

// close closes the connection and waits until go-zookeeper has closed its
// event channel, which it does once its goroutines are done.
func (c *client) close() {
	c.conn.Close()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case _, ok := <-c.events:
			if !ok {
				return
			}
		case <-deadline.C:
			return // not worth hanging the command for
		}
	}
}

// zkLogger keeps go-zookeeper's last message for error reports, and echoes
// every message to echo (stderr with -v).
type zkLogger struct {
	echo io.Writer
	mu   sync.Mutex
	msg  string
}

func (l *zkLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msg = msg
	if l.echo != nil {
		fmt.Fprintln(l.echo, "zk:", msg)
	}
}

func (l *zkLogger) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msg
}

// liveSessions asks every server for its connections (the "cons" four-letter
// word) and returns the sessions connected to each, by session id. A session
// connected to none of them may still be alive, connected to a server not in
// the list or between connections; complete is false when a server did not
// answer (or does not allow cons), and err says why.
func liveSessions(servers []string, timeout time.Duration) (live map[int64]string, complete bool, err error) {
	live = map[int64]string{}
	var errs []error
	for _, s := range servers {
		ids, err := cons(s, timeout)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, id := range ids {
			live[id] = s
		}
	}
	return live, len(errs) == 0, errors.Join(errs...)
}

// cons returns the session ids in server's reply to "cons". go-zookeeper's
// FLWCons expects integer latencies, which ZooKeeper 3.5+ no longer prints,
// so this reads only the sid= field of each line.
func cons(server string, timeout time.Duration) ([]int64, error) {
	conn, err := net.DialTimeout("tcp", server, timeout)
	if err != nil {
		return nil, fmt.Errorf("cons %s: %w", server, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte("cons")); err != nil {
		return nil, fmt.Errorf("cons %s: %w", server, err)
	}
	var ids []int64
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lines := 0
	for sc.Scan() {
		line := sc.Text()
		lines++
		if strings.Contains(line, "not in the whitelist") || strings.Contains(line, "not executed") {
			return nil, fmt.Errorf("cons %s: refused by the server (4lw.commands.whitelist)", server)
		}
		_, rest, ok := strings.Cut(line, "sid=0x")
		if !ok {
			continue // the cons connection itself has no session
		}
		hex, _, _ := strings.Cut(rest, ",")
		id, err := strconv.ParseUint(strings.TrimSuffix(hex, ")"), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("cons %s: unreadable line %q", server, line)
		}
		ids = append(ids, int64(id))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cons %s: %w", server, err)
	}
	if lines == 0 {
		return nil, fmt.Errorf("cons %s: empty reply", server)
	}
	return ids, nil
}
