package workqueue

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/zkactor/zkactor/cluster"
)

// An item's znode is named <key>-<seq>: the producer's idempotency key,
// then the sequence number ZooKeeper appends, which orders the queue
// (oldest first). The number is items/'s child version, a signed 32-bit
// counter formatted "%010d" that every create and delete below items/
// moves on: after 2^31 of them (a billion items put and acknowledged) it
// wraps to -2147483648 ("<key>--2147483648"), counts up through
// "-000000001" to 0, and goes on. Those are items too, newer than every
// positive one: the queue orders the numbers as unsigned. A key may not
// end in '-', so that "<key>--<digits>" can only be a wrapped number.
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
	if strings.HasSuffix(key, "-") {
		return fmt.Errorf("idempotency key %q ends in '-' (an item's name would read as a wrapped sequence number): %w", key, cluster.ErrBadName)
	}
	return nil
}

// parseItem splits an item's znode name into its key and sequence number
// (in queue order: a wrapped, negative number as unsigned). Names of any
// other shape are not items and are skipped.
func parseItem(name string) (key string, seq int64, ok bool) {
	if len(name) < seqLen+2 {
		return "", 0, false
	}
	digits := name[len(name)-seqLen:]
	sign := 1
	if digits[0] == '-' { // "-000000001" .. "-999999999"
		digits, sign = digits[1:], -1
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return "", 0, false
		}
	}
	rest := name[:len(name)-seqLen] // "<key>-", or "<key>--" before 10 digits of a wrapped number
	if sign == 1 && strings.HasSuffix(rest, "--") {
		rest, sign = rest[:len(rest)-1], -1 // "-2147483648" .. "-1000000000"
	}
	if !strings.HasSuffix(rest, "-") {
		return "", 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	n *= int64(sign)
	key = rest[:len(rest)-1]
	if err != nil || n < math.MinInt32 || n > math.MaxInt32 || checkKey(key) != nil {
		return "", 0, false
	}
	return key, int64(uint32(int32(n))), true
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
