package workqueue

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"

	"github.com/zkactor/zkactor/cluster"
)

// An item's znode is named <key>-<seq>: the producer's idempotency key,
// then the 10-digit sequence number ZooKeeper appends, which orders the
// queue (oldest first).
const (
	seqLen = 10
	// MaxKeyLength bounds an idempotency key, in bytes, so that
	// "<key>-<seq>" stays a short znode name.
	MaxKeyLength = 128
	// MaxPayloadSize bounds an item's payload, in bytes. ZooKeeper drops the
	// connection of a client whose request nears jute.maxbuffer (about
	// 1 MiB); an item stays far below it, with room for its record.
	MaxPayloadSize = 256 << 10
)

// checkKey reports whether key may name items: a valid znode name
// (cluster.ValidateName) of at most MaxKeyLength bytes.
func checkKey(key string) error {
	if err := cluster.ValidateName(key); err != nil {
		return fmt.Errorf("idempotency key: %w", err)
	}
	if len(key) > MaxKeyLength {
		return fmt.Errorf("idempotency key of %d bytes (the limit is %d): %w", len(key), MaxKeyLength, cluster.ErrBadName)
	}
	return nil
}

// parseItem splits an item's znode name into its key and sequence number.
// Names of any other shape are not items and are skipped.
func parseItem(name string) (key string, seq int64, ok bool) {
	if len(name) < seqLen+2 || name[len(name)-seqLen-1] != '-' {
		return "", 0, false
	}
	digits := name[len(name)-seqLen:]
	for _, r := range digits {
		if r < '0' || r > '9' {
			return "", 0, false
		}
	}
	seq, err := strconv.ParseInt(digits, 10, 64)
	key = name[:len(name)-seqLen-1]
	if err != nil || checkKey(key) != nil {
		return "", 0, false
	}
	return key, seq, true
}

// order returns the item names among names, oldest first, and the names
// that are not items.
func order(names []string) (items, others []string) {
	type item struct {
		name string
		seq  int64
	}
	var is []item
	for _, n := range names {
		if _, seq, ok := parseItem(n); ok {
			is = append(is, item{n, seq})
		} else {
			others = append(others, n)
		}
	}
	sort.Slice(is, func(a, b int) bool { return is[a].seq < is[b].seq })
	items = make([]string, len(is))
	for i, it := range is {
		items[i] = it.name
	}
	return items, others
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
