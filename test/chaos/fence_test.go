package chaos

import (
	"errors"
	"path"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/test/zktest"
)

// TestFencedWrite: a job-store write fenced with a candidate znode happens
// while that znode exists and fails, doing nothing, once it is gone; and a
// failed check is not mistaken for the write's own error (a delete of a job
// already gone is fine, a delete refused by the fence is not).
func TestFencedWrite(t *testing.T) {
	conn := zktest.Start(t).Connect(t)
	root := zktest.Root(t)
	acl := zk.WorldACL(zk.PermAll)
	jobs := path.Join(root, jobsDir)
	for _, p := range []string{"/t", root, jobs} {
		if _, err := conn.Create(p, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatal(err)
		}
	}
	candidate, err := conn.Create(path.Join(root, "_c_x-c-"), nil, zk.FlagEphemeral|zk.FlagSequence, acl)
	if err != nil {
		t.Fatal(err)
	}
	create := &zk.CreateRequest{Path: path.Join(jobs, "job-"), Data: []byte("x"), Acl: acl, Flags: zk.FlagSequence}
	res, err := fencedWrite(conn, candidate, create)
	if err != nil {
		t.Fatalf("create under a live term: %v", err)
	}
	job := res.String
	if ok, _, _ := conn.Exists(job); !ok {
		t.Fatalf("fenced create returned %q, which does not exist", job)
	}
	if _, err := fencedWrite(conn, candidate, &zk.DeleteRequest{Path: job + "0", Version: -1}); !errors.Is(err, zk.ErrNoNode) || errors.Is(err, errFenced) {
		t.Fatalf("delete of a missing job under a live term: got %v, want the delete's ErrNoNode", err)
	}

	if err := conn.Delete(candidate, -1); err != nil { // the term is over
		t.Fatal(err)
	}
	if _, err := fencedWrite(conn, candidate, create); !errors.Is(err, errFenced) {
		t.Fatalf("create after the term: got %v, want errFenced", err)
	}
	if kids, _, _ := conn.Children(jobs); len(kids) != 1 {
		t.Fatalf("jobs after a fenced-off create: %v, want only %s", kids, path.Base(job))
	}
	_, err = fencedWrite(conn, candidate, &zk.DeleteRequest{Path: job, Version: -1})
	if !errors.Is(err, errFenced) || ignoreNoNode(err) == nil {
		t.Fatalf("delete after the term: got %v, want errFenced, not taken for a job already gone", err)
	}
	if ok, _, _ := conn.Exists(job); !ok {
		t.Fatal("a fenced-off delete deleted the job")
	}
}
