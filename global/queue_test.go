package global

import (
	"slices"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"
)

// Pure logic of the queue: no ZooKeeper needed. The shape itself is tested
// in internal/protected; this pins what global puts on the wire, which
// versions of zkactor that elect together must agree on.

func TestCandidateNamesOnTheWire(t *testing.T) {
	guid := strings.Repeat("0a", 16)
	if got, want := candidates.Name(guid), "_c_"+guid+"-c-"; got != want {
		t.Fatalf("candidate name %q, want %q", got, want)
	}
	first, second := "_c_"+guid+"-c-0000000042", "_c_"+guid+"-c-0000000007"
	if g, seq, ok := parseCandidate(first); !ok || g != guid || seq != 42 {
		t.Errorf("parseCandidate(%q) = %q, %d, %v", first, g, seq, ok)
	}
	waiter, participant := "_c_"+guid+"-l-0000000001", "_c_"+guid+"-p-0000000001"
	got := queue([]string{first, waiter, "garbage", second, participant})
	if want := []string{second, first}; !slices.Equal(got, want) {
		t.Errorf("queue = %v, want %v: only candidates, by sequence", got, want)
	}
	if i := indexOf(got, first); i != 1 {
		t.Errorf("indexOf = %d, want 1", i)
	}
	if takesPart(&zk.Stat{}) || !takesPart(&zk.Stat{EphemeralOwner: 0x1000010bf9b0000}) {
		t.Error("takesPart is not the ephemeral rule")
	}
}
