package global_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

// A tenure runs its actor for a znode won outside the queue: Elected first
// with the znode's creation zxid and path; a delete by someone else stops
// the actor and ends the tenure as lost; Stop deletes the znode it owns.
func TestTenureOfAZnodeWonElsewhere(t *testing.T) {
	zkc := zktest.Shared(t)
	root := zktest.Root(t)
	n := newNode(t, zkc.Addrs(), root, 4*time.Second)
	other := zkc.Connect(t)
	acl := zk.WorldACL(zk.PermAll)
	if _, err := other.Create(root, nil, 0, acl); err != nil && err != zk.ErrNodeExists {
		t.Fatal(err)
	}
	var j journal
	for _, end := range []string{"deleted by someone else", "stopped"} {
		tenure, err := n.Elections.NewTenure("job "+end, "job")
		if err != nil {
			t.Fatal(err)
		}
		p := root + "/job"
		if _, err := n.Session.Conn().Create(p, []byte("ours"), zk.FlagEphemeral, acl); err != nil {
			t.Fatal(err)
		}
		_, stat, err := other.Get(p)
		if err != nil {
			t.Fatal(err)
		}
		tenure.Start(p, n.Session.ID(), j.props(end))
		zktest.Eventually(t, 10*time.Second, func() error {
			r := j.running()
			if len(r) != 1 || r[0].epoch == 0 {
				return fmt.Errorf("%d running", len(r))
			}
			if !r[0].pid.Equal(tenure.PID()) || r[0].epoch != stat.Czxid {
				return fmt.Errorf("running %v epoch %d; want %v epoch %d", r[0].pid, r[0].epoch, tenure.PID(), stat.Czxid)
			}
			if e, ok := r[0].first.(*pb.Elected); !ok || e.Candidate != p {
				return fmt.Errorf("first message %v", r[0].first)
			}
			return nil
		})
		if end == "stopped" {
			tenure.Stop()
		} else if err := other.Delete(p, -1); err != nil {
			t.Fatal(err)
		}
		select {
		case <-tenure.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the tenure did not end", end)
		}
		if got := tenure.Lost(); got != (end != "stopped") {
			t.Errorf("%s: Lost() = %v", end, got)
		}
		if len(j.running()) != 0 {
			t.Errorf("%s: the actor still runs", end)
		}
		if ok, _, err := other.Exists(p); err != nil || ok {
			t.Errorf("%s: the znode exists: %v, %v", end, ok, err)
		}
		// The stand-in is gone with the tenure: nothing is left under the PID.
		if _, ok := n.System.ProcessRegistry.GetLocal(tenure.PID().Id); ok {
			t.Errorf("%s: something is still registered under the tenure's PID", end)
		}
	}
}
