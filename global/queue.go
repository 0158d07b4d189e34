package global

import (
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/go-zookeeper/zk"
)

// A candidate znode is named _c_<guid>-c-<sequence>: the prefix and GUID
// (32 hex digits, one per candidacy) protect it, so that after a lost
// connection a candidacy finds its own znodes; ZooKeeper appends the
// 10-digit sequence number, which orders the queue.
const (
	candidatePrefix = "_c_"
	candidateMark   = "-c-"
	guidLen         = 32
	sequenceLen     = 10
)

// parseCandidate splits a candidate znode name into its GUID and sequence
// number. Names of any other shape are not candidates (see takesPart).
func parseCandidate(name string) (guid string, seq int64, ok bool) {
	if len(name) != len(candidatePrefix)+guidLen+len(candidateMark)+sequenceLen ||
		!strings.HasPrefix(name, candidatePrefix) {
		return "", 0, false
	}
	guid = name[len(candidatePrefix) : len(candidatePrefix)+guidLen]
	rest := name[len(candidatePrefix)+guidLen:]
	if !strings.HasPrefix(rest, candidateMark) || !isHex(guid) {
		return "", 0, false
	}
	digits := rest[len(candidateMark):]
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

// queue orders the candidate znode names among a name's children by
// sequence number, dropping names that are not candidates'.
func queue(names []string) []string {
	type cand struct {
		name string
		seq  int64
	}
	var cs []cand
	for _, n := range names {
		if _, seq, ok := parseCandidate(n); ok {
			cs = append(cs, cand{n, seq})
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].seq < cs[j].seq })
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

// takesPart reports whether a child whose name has the candidate shape
// takes part in the election: it must be ephemeral (not a container or a
// TTL znode), so that a live session stands behind it. The rule rests only on what nobody can change after the
// create (the name, the owner): a rule that read the data would let any
// client that overwrites a leader's data make the next candidate lead
// beside it. A persistent znode of the candidate shape (a copy, a
// leftover) is passed over by candidates and by WhereisGlobal alike, and
// left alone. An ephemeral one of another client is a candidate like any
// other while its session lives; if its data is not a Candidate record,
// WhereisGlobal reports no global while it heads the queue. (The shape is
// also a compatibility constraint: versions of zkactor that elect
// together must agree on it.)
func takesPart(stat *zk.Stat) bool {
	if stat == nil {
		return false
	}
	// ZooKeeper marks containers with math.MinInt64 as owner and TTL
	// znodes with 0xff in the owner's top byte: neither is a session.
	owner := stat.EphemeralOwner
	return owner != 0 && owner != math.MinInt64 && uint64(owner)>>56 != 0xff
}

func indexOf(q []string, name string) int {
	for i, n := range q {
		if n == name {
			return i
		}
	}
	return -1
}
