package protected_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/protected"
	"github.com/zkactor/zkactor/test/zktest"
)

func TestMain(m *testing.M) { zktest.Main(m) }

// Pure logic of the names: no ZooKeeper needed.

var candidates, waiters = protected.Shape{Mark: "-c-"}, protected.Shape{Mark: "-l-"}

func TestParse(t *testing.T) {
	guid := strings.Repeat("0a", 16)
	for _, tc := range []struct {
		name string
		ok   bool
		seq  int64
	}{
		{"_c_" + guid + "-c-0000000042", true, 42},
		{"_c_" + guid + "-c-2147483647", true, 2147483647},
		{"_c_" + guid + "-c-000000004", false, 0},   // 9 digits
		{"_c_" + guid + "-c-00000000042", false, 0}, // 11 digits
		{"_c_" + guid + "-c-00000000x2", false, 0},  // not a number
		{"_c_" + guid + "-c--000000042", false, 0},  // a sign
		{"_c_" + strings.ToUpper(guid) + "-c-0000000042", false, 0},
		{"_c_" + guid[:30] + "zz-c-0000000042", false, 0},
		{"_x_" + guid + "-c-0000000042", false, 0},
		{"_c_" + guid + "-l-0000000042", false, 0}, // another shape's
		{"_c_" + guid + "-x-0000000042", false, 0},
		{"ready", false, 0},
		{"", false, 0},
	} {
		g, seq, ok := candidates.Parse(tc.name)
		if ok != tc.ok || ok && (seq != tc.seq || g != guid) {
			t.Errorf("Parse(%q) = %q, %d, %v; want ok=%v seq=%d", tc.name, g, seq, ok, tc.ok, tc.seq)
		}
	}
}

// TestNameOnTheWire pins the names: versions of zkactor that queue together
// must agree on them.
func TestNameOnTheWire(t *testing.T) {
	guid := protected.NewGUID()
	if len(guid) != protected.GUIDLen || strings.Trim(guid, "0123456789abcdef") != "" {
		t.Fatalf("NewGUID() = %q, want 32 lowercase hex digits", guid)
	}
	if guid == protected.NewGUID() {
		t.Fatal("NewGUID returned the same GUID twice")
	}
	if got, want := candidates.Name(guid), "_c_"+guid+"-c-"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	name := waiters.Name(guid) + "0000000007" // as ZooKeeper completes it
	if g, seq, ok := waiters.Parse(name); !ok || g != guid || seq != 7 {
		t.Errorf("Parse(%q) = %q, %d, %v; want %q, 7, true", name, g, seq, ok, guid)
	}
	if _, _, ok := candidates.Parse(name); ok {
		t.Errorf("a candidate shape parses the waiter %q", name)
	}
}

func TestOrderBySequenceAndOwn(t *testing.T) {
	a, b := strings.Repeat("aa", 16), strings.Repeat("bb", 16)
	names := []string{
		"_c_" + b + "-c-0000000010",
		"garbage",
		"_c_" + a + "-c-0000000002",
		"_c_" + a + "-l-0000000003", // a waiter among candidates
		"_c_" + a + "-c-0000000100",
		"_c_" + b + "-c-0000000001",
	}
	want := []string{
		"_c_" + b + "-c-0000000001",
		"_c_" + a + "-c-0000000002",
		"_c_" + b + "-c-0000000010",
		"_c_" + a + "-c-0000000100",
	}
	if got := candidates.Order(names); !slices.Equal(got, want) {
		t.Errorf("Order = %v, want %v", got, want)
	}
	if got, want := candidates.Own(names, a), []string{want[1], want[3]}; !slices.Equal(got, want) {
		t.Errorf("Own(a) = %v, want %v", got, want)
	}
	if got := candidates.Own(names, strings.Repeat("cc", 16)); len(got) != 0 {
		t.Errorf("Own(c) = %v, want none", got)
	}
}

func TestTakesPartOnlyIfEphemeral(t *testing.T) {
	if protected.TakesPart(nil) || protected.TakesPart(&zk.Stat{}) {
		t.Error("a persistent znode (or none) takes part")
	}
	if !protected.TakesPart(&zk.Stat{EphemeralOwner: 0x1000010bf9b0000}) {
		t.Error("an ephemeral znode does not take part")
	}
	if protected.TakesPart(&zk.Stat{EphemeralOwner: math.MinInt64}) {
		t.Error("a container takes part")
	}
	if protected.TakesPart(&zk.Stat{EphemeralOwner: -0x00ffffffffffff00}) { // 0xff00...: a TTL znode
		t.Error("a TTL znode takes part")
	}
}

func TestRefused(t *testing.T) {
	for _, err := range []error{zk.ErrNoAuth, fmt.Errorf("create /x: %w", zk.ErrInvalidACL), cluster.ErrClosed, cluster.ErrBadName} {
		if !protected.Refused(err) {
			t.Errorf("Refused(%v) = false", err)
		}
	}
	for _, err := range []error{nil, zk.ErrConnectionClosed, zk.ErrNoNode, context.DeadlineExceeded, cluster.ErrNotConnected} {
		if protected.Refused(err) {
			t.Errorf("Refused(%v) = true: retrying may cure it", err)
		}
	}
}
