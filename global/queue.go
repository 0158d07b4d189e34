package global

import (
	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/protected"
)

// A candidate znode is named _c_<guid>-c-<sequence>: the prefix and GUID
// (32 hex digits, one per candidacy) protect it, so that after a lost
// connection a candidacy finds its own znodes; ZooKeeper appends the
// 10-digit sequence number, which orders the queue (see package protected).
var candidates = protected.Shape{Mark: "-c-"}

// parseCandidate splits a candidate znode name into its GUID and sequence
// number. Names of any other shape are not candidates (see takesPart).
func parseCandidate(name string) (guid string, seq int64, ok bool) {
	return candidates.Parse(name)
}

// queue orders the candidate znode names among a name's children by
// sequence number, dropping names that are not candidates'.
func queue(names []string) []string { return candidates.Order(names) }

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
func takesPart(stat *zk.Stat) bool { return protected.TakesPart(stat) }

func indexOf(q []string, name string) int {
	for i, n := range q {
		if n == name {
			return i
		}
	}
	return -1
}
