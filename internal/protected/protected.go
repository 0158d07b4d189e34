// Package protected names and finds the protected ephemeral-sequential
// znodes that zkactor's queues are made of: the candidates of an election
// (package global), the waiters of a lock and the participants of a barrier
// (recipes/lock, recipes/barrier).
//
// A protected znode is named
//
//	_c_<guid><mark><sequence>      e.g. _c_0a1b…9f-c-0000000042
//
// The GUID (32 lowercase hex digits) is drawn once per owner (a candidacy, a
// Lock call, an Enter) and carried by every znode it creates. A create whose
// reply is lost (the connection dropped, the caller gave up) may or may not
// have been applied, and ZooKeeper chose the sequence number: only the GUID
// lets the owner find the znode it made, take it (Shape.Find) instead of
// queueing twice, and delete the ones it no longer wants (Shape.Delete). The
// mark (-c-, -l-, -p-) tells the kinds apart; ZooKeeper appends the 10-digit
// sequence, which orders the queue (Shape.Order).
//
// Whether a znode of that shape takes part rests only on what nobody can
// change after the create: its name and its ephemeral owner (TakesPart). A
// rule that read the data would let any client that can write it reorder or
// empty the queue; a persistent, container or TTL znode of the shape (a copy,
// a leftover) has no session behind it and would hold its place forever.
//
// The shape is also a compatibility constraint: versions of zkactor that
// queue together must agree on it, so it never changes.
//
// The names are pure logic (protected.go). The requests borrow a
// cluster.Session: Shape.Enqueue is the whole protected create (Create, one
// attempt that reads the session in the same exchange; Owner when the
// session changed meanwhile; Shape.Find after a lost reply), and Shape.Delete,
// Shape.SweepLater and Abandon remove what an owner no longer wants. Package
// global keeps its own loop around Create (its strays pass to the Elections'
// sweeper once a candidacy ends) and Find and Delete; it sweeps with its
// own sweeper.
package protected

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/go-zookeeper/zk"
)

const (
	// Prefix starts every protected znode name.
	Prefix = "_c_"
	// GUIDLen is the length of the GUID in hex digits.
	GUIDLen = 32
	// SequenceLen is the length of the sequence number ZooKeeper appends.
	SequenceLen = 10
)

// Shape is one kind of protected znode, told apart by its mark: "-c-" for
// the candidates of an election, "-l-" for a lock's waiters, "-p-" for a
// barrier's participants.
type Shape struct {
	Mark string
}

// NewGUID returns a fresh GUID: 32 random lowercase hex digits.
func NewGUID() string {
	b := make([]byte, GUIDLen/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Name returns the name to create, sequential, for guid: _c_<guid><mark>.
// ZooKeeper appends the sequence number.
func (sh Shape) Name(guid string) string {
	return Prefix + guid + sh.Mark
}

// Parse splits a znode name of this shape into its GUID and sequence
// number. Names of any other shape report ok false: they are not part of
// the queue and are passed over.
func (sh Shape) Parse(name string) (guid string, seq int64, ok bool) {
	if len(name) != len(Prefix)+GUIDLen+len(sh.Mark)+SequenceLen ||
		!strings.HasPrefix(name, Prefix) {
		return "", 0, false
	}
	guid = name[len(Prefix) : len(Prefix)+GUIDLen]
	rest := name[len(Prefix)+GUIDLen:]
	if !strings.HasPrefix(rest, sh.Mark) || !isHex(guid) {
		return "", 0, false
	}
	digits := rest[len(sh.Mark):]
	for _, r := range digits {
		if r < '0' || r > '9' {
			return "", 0, false
		}
	}
	seq, err := strconv.ParseInt(digits, 10, 64)
	return guid, seq, err == nil
}

func isHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// Order returns the names of this shape among names, ordered by sequence
// number: the queue. Names of any other shape are dropped.
func (sh Shape) Order(names []string) []string {
	type entry struct {
		name string
		seq  int64
	}
	var es []entry
	for _, n := range names {
		if _, seq, ok := sh.Parse(n); ok {
			es = append(es, entry{n, seq})
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].seq < es[j].seq })
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.name
	}
	return out
}

// Own returns the names of this shape among names that carry guid, in
// sequence order: the znodes one owner has made.
func (sh Shape) Own(names []string, guid string) []string {
	var out []string
	for _, n := range sh.Order(names) {
		if g, _, _ := sh.Parse(n); g == guid {
			out = append(out, n)
		}
	}
	return out
}

// TakesPart reports whether a znode of a protected shape, read with stat,
// takes part in its queue: it must be ephemeral, so that a live session
// stands behind it and it goes when that session ends. A persistent znode
// (EphemeralOwner 0), a container (math.MinInt64) or a TTL znode (0xff in
// the owner's top byte) is none, and a nil stat (no znode) neither.
func TakesPart(stat *zk.Stat) bool {
	if stat == nil {
		return false
	}
	owner := stat.EphemeralOwner
	return owner != 0 && owner != math.MinInt64 && uint64(owner)>>56 != 0xff
}
