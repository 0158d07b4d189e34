package provider

import (
	"fmt"
	"testing"

	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// TestPickSpreadsIdentities: rendezvous hashing spreads the identities of
// a kind over its members, also when the identities share long prefixes
// and suffixes, and every member agrees on the choice (it depends on the
// member ids only, not on their order).
func TestPickSpreadsIdentities(t *testing.T) {
	members := []*pcluster.Member{
		{Id: "Ek9SGxGitfLh3zK97aNzGV", Kinds: []string{"counter"}},
		{Id: "f5NiwmFjfc3y6uK9zkr3qZ", Kinds: []string{"counter"}},
		{Id: "WmL95bAToXiffzYWJfqSmY", Kinds: []string{"counter", "other"}},
	}
	l, reversed := &IdentityLookup{}, &IdentityLookup{}
	l.topo.Store(newTopology(members))
	reversed.topo.Store(newTopology([]*pcluster.Member{members[2], members[1], members[0]}))
	counts := map[string]int{}
	const n = 600
	for i := range n {
		id := fmt.Sprintf("user-%d-suffix", i)
		m := l.pick("counter", id)
		if r := reversed.pick("counter", id); r.Id != m.Id {
			t.Fatalf("%s: %s in one order, %s in another", id, m.Id, r.Id)
		}
		counts[m.Id]++
	}
	for _, m := range members {
		if counts[m.Id] < n/3*2/3 {
			t.Errorf("member %s got %d of %d identities: %v", m.Id, counts[m.Id], n, counts)
		}
	}
	if m := l.pick("other", "x"); m == nil || m.Id != members[2].Id {
		t.Errorf("pick(other) = %v, want the one member with the kind", m)
	}
	if m := l.pick("nobody", "x"); m != nil {
		t.Errorf("pick(nobody) = %v, want none", m)
	}
}
