package records_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/internal/records"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
	"github.com/zkactor/zkactor/test/zktest"
)

// Pure decoding: no ZooKeeper needed.

func TestMain(m *testing.M) { zktest.Main(m) }

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	pid      = &pb.PID{Address: "127.0.0.1:8000", Id: "worker"}
	goodReg  = &pb.Registration{Name: "svc", Pid: pid, NodeId: "n1", NodeAddress: "127.0.0.1:8000", Metadata: map[string]string{"k": "v"}, RegisteredAt: timestamppb.Now()}
	goodNode = &pb.Node{Id: "n1", Address: "127.0.0.1:8000", StartedAt: timestamppb.Now()}
	goodCand = &pb.Candidate{Name: "boss", Pid: pid, NodeId: "n1", NodeAddress: "127.0.0.1:8000", Since: timestamppb.Now()}
)

func TestDecoders(t *testing.T) {
	garbage := map[string][]byte{
		"empty":     nil,
		"junk":      {0xff, 0x00, 0x13, 0x37, 'j', 'u', 'n', 'k'},
		"json":      []byte(`{"pid":"not protobuf"}`),
		"truncated": marshal(t, goodReg)[:5],
		"bad utf8":  {0x0a, 0x02, 0xff, 0xfe}, // field 1 (a string) with invalid UTF-8
	}
	for name, data := range garbage {
		if _, err := records.Registration(data); !errors.Is(err, records.ErrUnusable) {
			t.Errorf("Registration(%s) = %v, want ErrUnusable", name, err)
		}
		if _, err := records.Node(data); !errors.Is(err, records.ErrUnusable) {
			t.Errorf("Node(%s) = %v, want ErrUnusable", name, err)
		}
		if _, err := records.Candidate(data); !errors.Is(err, records.ErrUnusable) {
			t.Errorf("Candidate(%s) = %v, want ErrUnusable", name, err)
		}
	}
	// The wrong record: a Node read as a registration has no PID.
	if _, err := records.Registration(marshal(t, goodNode)); !errors.Is(err, records.ErrUnusable) {
		t.Errorf("a Node as a Registration: %v, want ErrUnusable", err)
	}
	if _, err := records.Candidate(marshal(t, &pb.Candidate{Pid: &pb.PID{Address: "a"}})); !errors.Is(err, records.ErrUnusable) {
		t.Errorf("a candidate without a PID id: %v, want ErrUnusable", err)
	}
	if r, err := records.Registration(marshal(t, goodReg)); err != nil || !proto.Equal(r, goodReg) {
		t.Errorf("Registration(good) = %v, %v", r, err)
	}
	if r, err := records.Node(marshal(t, goodNode)); err != nil || !proto.Equal(r, goodNode) {
		t.Errorf("Node(good) = %v, %v", r, err)
	}
	if r, err := records.Candidate(marshal(t, goodCand)); err != nil || !proto.Equal(r, goodCand) {
		t.Errorf("Candidate(good) = %v, %v", r, err)
	}
}

// checkDecoded is what every fuzz target asserts: no panic (the fuzzer
// reports one), an error wrapping ErrUnusable for what is refused, and for
// what is accepted, the required fields and a stable re-encoding.
func checkDecoded[M proto.Message](t *testing.T, data []byte, decode func([]byte) (M, error), complete func(M) bool) {
	rec, err := decode(data)
	if err != nil {
		if !errors.Is(err, records.ErrUnusable) {
			t.Fatalf("error %v does not wrap ErrUnusable", err)
		}
		if err.Error() == "" {
			t.Fatal("empty error message")
		}
		return
	}
	if !complete(rec) {
		t.Fatalf("accepted an incomplete record: %v", rec)
	}
	again, err := decode(marshal(t, rec))
	if err != nil || !proto.Equal(rec, again) {
		t.Fatalf("re-encoding %v decodes to %v, %v", rec, again, err)
	}
}

func FuzzRegistration(f *testing.F) {
	f.Add(marshal(f, goodReg))
	f.Add([]byte{})
	f.Add(marshal(f, goodNode))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecoded(t, data, records.Registration, func(r *pb.Registration) bool {
			return r.GetPid().GetAddress() != "" && r.GetPid().GetId() != ""
		})
	})
}

func FuzzNode(f *testing.F) {
	f.Add(marshal(f, goodNode))
	f.Add([]byte{})
	f.Add(marshal(f, goodReg))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecoded(t, data, records.Node, func(n *pb.Node) bool { return n.GetAddress() != "" })
	})
}

func FuzzCandidate(f *testing.F) {
	f.Add(marshal(f, goodCand))
	f.Add([]byte{})
	f.Add(marshal(f, goodReg))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecoded(t, data, records.Candidate, func(c *pb.Candidate) bool {
			return c.GetPid().GetAddress() != "" && c.GetPid().GetId() != ""
		})
	})
}
