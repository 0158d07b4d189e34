package provider_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/zkactor/zkactor/test/zktest"
)

// TestMembersSeeEachOtherAndRequestsReachOneActivation: three members in
// processes of their own see each other (self included) in protoactor's
// topology, and requests to one identity from every member reach its one
// activation: the count grows by one per request, with one epoch.
func TestMembersSeeEachOtherAndRequestsReachOneActivation(t *testing.T) {
	root := zktest.Root(t)
	var cs []*child
	var ids []string
	for range 3 {
		c := startChild(t, childOpts{servers: servers(t), root: root})
		cs = append(cs, c)
		ids = append(ids, c.ID)
	}
	waitMembers(t, ids, cs...)

	var epoch, host string
	for i := range 6 {
		c := cs[i%3]
		res := c.do("request", "alice", "incr")
		f := strings.Fields(res)
		if len(f) != 3 || f[0] != fmt.Sprint(i+1) {
			t.Fatalf("request %d from %s: %q, want count %d", i+1, c.ID, res, i+1)
		}
		if i == 0 {
			host, epoch = f[1], f[2]
		} else if f[1] != host || f[2] != epoch {
			t.Fatalf("request %d from %s reached %s epoch %s, want %s epoch %s", i+1, c.ID, f[1], f[2], host, epoch)
		}
	}
	activated := 0
	for _, c := range cs {
		activated += len(c.lines("activated alice "))
	}
	if activated != 1 {
		t.Errorf("alice activated %d times, want once", activated)
	}
}
