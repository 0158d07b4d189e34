package barrier

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/go-zookeeper/zk"
)

// A participant's znode is named _c_<guid>-p-<sequence>: the prefix and
// GUID (32 hex digits, one per Enter) protect it, so that after a
// connection lost during the create the participant finds its own znode;
// ZooKeeper appends the 10-digit sequence number, which orders the
// participants (Leave waits on the lowest and the highest).
const (
	protectedPrefix = "_c_"
	participantMark = "-p-"
	guidLen         = 32
	sequenceLen     = 10
)

// parseParticipant splits a participant znode name into its GUID and
// sequence number. Names of any other shape are not participants and are
// passed over (the ready znode among them).
func parseParticipant(name string) (guid string, seq int64, ok bool) {
	if len(name) != len(protectedPrefix)+guidLen+len(participantMark)+sequenceLen ||
		!strings.HasPrefix(name, protectedPrefix) {
		return "", 0, false
	}
	guid = name[len(protectedPrefix) : len(protectedPrefix)+guidLen]
	rest := name[len(protectedPrefix)+guidLen:]
	if !strings.HasPrefix(rest, participantMark) || !isHex(guid) {
		return "", 0, false
	}
	digits := rest[len(participantMark):]
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

// queue orders the participant names among a barrier's children by
// sequence number, dropping names that are not participants'.
func queue(names []string) []string {
	type participant struct {
		name string
		seq  int64
	}
	var ws []participant
	for _, n := range names {
		if _, seq, ok := parseParticipant(n); ok {
			ws = append(ws, participant{n, seq})
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].seq < ws[j].seq })
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.name
	}
	return out
}

func indexOf(q []string, name string) int {
	for i, n := range q {
		if n == name {
			return i
		}
	}
	return -1
}

// live reports whether a participant-shaped znode has a session behind it:
// a persistent copy, a container or a TTL znode of that shape never leaves
// by itself, so Leave does not wait for it.
func live(stat *zk.Stat) bool {
	if stat == nil {
		return false
	}
	owner := stat.EphemeralOwner
	return owner != 0 && owner != math.MinInt64 && uint64(owner)>>56 != 0xff
}

func newGUID() string {
	b := make([]byte, guidLen/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
