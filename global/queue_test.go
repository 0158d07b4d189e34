package global

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"
)

// Pure logic of the queue: no ZooKeeper needed.

func TestParseCandidate(t *testing.T) {
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
		{"_c_" + strings.ToUpper(guid) + "-c-0000000042", false, 0},
		{"_c_" + guid[:30] + "zz-c-0000000042", false, 0},
		{"_x_" + guid + "-c-0000000042", false, 0},
		{"_c_" + guid + "-x-0000000042", false, 0},
		{"lock-0000000001", false, 0},
		{"", false, 0},
	} {
		g, seq, ok := parseCandidate(tc.name)
		if ok != tc.ok || ok && (seq != tc.seq || g != guid) {
			t.Errorf("parseCandidate(%q) = %q, %d, %v; want ok=%v seq=%d", tc.name, g, seq, ok, tc.ok, tc.seq)
		}
	}
}

func TestQueueOrdersBySequenceAndDropsOthers(t *testing.T) {
	a, b := strings.Repeat("aa", 16), strings.Repeat("bb", 16)
	names := []string{
		"_c_" + b + "-c-0000000010",
		"garbage",
		"_c_" + a + "-c-0000000002",
		"_c_" + a + "-c-0000000100",
		"_c_" + b + "-c-0000000001",
	}
	got := queue(names)
	want := []string{
		"_c_" + b + "-c-0000000001",
		"_c_" + a + "-c-0000000002",
		"_c_" + b + "-c-0000000010",
		"_c_" + a + "-c-0000000100",
	}
	if !slices.Equal(got, want) {
		t.Errorf("queue = %v, want %v", got, want)
	}
	if i := indexOf(got, "_c_"+b+"-c-0000000010"); i != 2 {
		t.Errorf("indexOf = %d, want 2", i)
	}
	if i := indexOf(got, "garbage"); i != -1 {
		t.Errorf("indexOf(garbage) = %d, want -1", i)
	}
}

func TestTakesPartOnlyIfEphemeral(t *testing.T) {
	if takesPart(nil) || takesPart(&zk.Stat{}) {
		t.Error("a persistent znode (or none) takes part")
	}
	if !takesPart(&zk.Stat{EphemeralOwner: 0x1000010bf9b0000}) {
		t.Error("an ephemeral znode does not take part")
	}
	if takesPart(&zk.Stat{EphemeralOwner: math.MinInt64}) {
		t.Error("a container takes part")
	}
	if takesPart(&zk.Stat{EphemeralOwner: -0x00ffffffffffff00}) { // 0xff00...: a TTL znode
		t.Error("a TTL znode takes part")
	}
}
