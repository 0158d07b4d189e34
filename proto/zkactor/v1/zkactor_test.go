package zkactorv1_test

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	zkactorv1 "github.com/zkactor/zkactor/proto/zkactor/v1"
)

func testRegistration() *zkactorv1.Registration {
	return &zkactorv1.Registration{
		Name:         "echo",
		Pid:          &zkactorv1.PID{Address: "127.0.0.1:8090", Id: "echo-1"},
		NodeId:       "node-a",
		NodeAddress:  "127.0.0.1:8090",
		Metadata:     map[string]string{"zone": "eu", "weight": "3"},
		RegisteredAt: timestamppb.New(time.Date(2024, 8, 22, 20, 23, 45, 0, time.UTC)),
	}
}

func TestRegistrationRoundTrip(t *testing.T) {
	in := testRegistration()
	data, err := proto.Marshal(in)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	out := &zkactorv1.Registration{}
	if err := proto.Unmarshal(data, out); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if !proto.Equal(in, out) {
		t.Fatalf("round trip mismatch:\n in: %v\nout: %v", in, out)
	}
}

// TestRegistrationToleratesUnknownFields proves forward compatibility: data
// written by a newer schema (with a field this one does not know) decodes
// without error, and re-encoding keeps the unknown field.
func TestRegistrationToleratesUnknownFields(t *testing.T) {
	data, err := proto.Marshal(testRegistration())
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var unknown []byte
	unknown = protowire.AppendTag(unknown, 1000, protowire.BytesType)
	unknown = protowire.AppendString(unknown, "from a newer schema")
	unknown = protowire.AppendTag(unknown, 1001, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 42)
	data = append(data, unknown...)

	out := &zkactorv1.Registration{}
	if err := proto.Unmarshal(data, out); err != nil {
		t.Fatalf("unmarshal with unknown fields: %v", err)
	}
	if !proto.Equal(out, func() *zkactorv1.Registration {
		r := testRegistration()
		r.ProtoReflect().SetUnknown(unknown)
		return r
	}()) {
		t.Fatalf("known fields changed: %v", out)
	}
	if got := out.ProtoReflect().GetUnknown(); !bytes.Equal(got, unknown) {
		t.Fatalf("unknown fields = %x, want %x", got, unknown)
	}

	again, err := proto.Marshal(out)
	if err != nil {
		t.Fatalf("re-marshal: %v", err)
	}
	if !bytes.Contains(again, unknown) {
		t.Fatalf("re-marshaled data lost the unknown fields: %x", again)
	}
	back := &zkactorv1.Registration{}
	if err := proto.Unmarshal(again, back); err != nil {
		t.Fatalf("unmarshal re-marshaled: %v", err)
	}
	if !bytes.Equal(back.ProtoReflect().GetUnknown(), unknown) {
		t.Fatalf("unknown fields lost after second round trip")
	}
}
