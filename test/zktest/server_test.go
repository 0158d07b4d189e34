package zktest

import (
	"net"
	"strings"
	"testing"
)

// A port taken between picking and binding makes the server exit; the start is retried with
// other ports.
func TestStartRetriesWhenPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port

	calls := 0
	freePorts = func(n int) ([]int, error) {
		calls++
		if calls == 1 {
			return []int{takenPort}, nil
		}
		return pickFreePorts(n)
	}
	t.Cleanup(func() { freePorts = pickFreePorts })

	c := Start(t)
	if calls != 2 {
		t.Fatalf("ports picked %d times, want 2", calls)
	}
	if c.Addrs()[0] == taken.Addr().String() {
		t.Fatalf("server on the taken port %d", takenPort)
	}
	if reply, err := c.Srvr(0); err != nil || !strings.Contains(reply, "Mode: standalone") {
		t.Fatalf("Srvr = %q, %v", reply, err)
	}
}
