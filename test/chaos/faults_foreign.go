package chaos

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// children lists dir's children with the foreign client, sorted; none if
// dir does not exist.
func (r *Run) children(dir string) ([]string, error) {
	var names []string
	err := r.foreignDo("children "+dir, func(c *zk.Conn) error {
		var err error
		names, _, err = c.Children(dir)
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	slices.Sort(names)
	return names, err
}

func (r *Run) foreignDelete(p string) error {
	err := r.foreignDo("delete "+p, func(c *zk.Conn) error { return c.Delete(p, -1) })
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}

// deleteCandidate deletes a candidate znode of a random global name with
// a client of no node: the queue's head (the leader's) with even odds.
var deleteCandidate = fault{name: "delete-candidate", inject: func(tr *Trial) (func(), error) {
	names := append([]string{bossName}, tr.r.cfg.Globals...)
	name := names[tr.Rand.IntN(len(names))]
	dir := path.Join(tr.r.root, "globals", name)
	kids, err := tr.r.children(dir)
	if err != nil {
		return nil, err
	}
	if len(kids) == 0 {
		tr.Note("no candidate of %q to delete", name)
		return nil, nil
	}
	slices.SortFunc(kids, func(a, b string) int { return strings.Compare(seqOf(a), seqOf(b)) })
	victim := kids[0]
	if tr.Rand.IntN(2) == 0 {
		victim = kids[tr.Rand.IntN(len(kids))]
	}
	// The leader can only learn of the delete from a watch: allow the
	// notification's latency as overlap (issue 7 asks it be measured).
	tr.AllowOverlap(500 * time.Millisecond)
	tr.Fault("foreign client deletes %s/%s", name, victim)
	if err := tr.r.foreignDelete(path.Join(dir, victim)); err != nil {
		return nil, err
	}
	tr.Hold(tr.Between(tr.SessionTimeout()/2, tr.SessionTimeout()))
	return nil, nil
}}

// seqOf is the sequence suffix of a sequential znode's name (its last 10
// characters), or the name itself when it has none; it orders a queue.
func seqOf(name string) string {
	if len(name) >= 10 {
		return name[len(name)-10:]
	}
	return name
}

// deleteRegistration deletes a random registration znode.
var deleteRegistration = fault{name: "delete-registration", inject: func(tr *Trial) (func(), error) {
	services := append([]string{workerService}, tr.r.cfg.Services...)
	svc := services[tr.Rand.IntN(len(services))]
	dir := path.Join(tr.r.root, "services", svc)
	kids, err := tr.r.children(dir)
	if err != nil {
		return nil, err
	}
	if len(kids) == 0 {
		tr.Note("no registration under %q to delete", svc)
		return nil, nil
	}
	victim := kids[tr.Rand.IntN(len(kids))]
	tr.Fault("foreign client deletes services/%s/%s", svc, victim)
	if err := tr.r.foreignDelete(path.Join(dir, victim)); err != nil {
		return nil, err
	}
	tr.Hold(tr.Between(tr.SessionTimeout()/2, tr.SessionTimeout()))
	return nil, nil
}}

// garbage writes znodes no zkactor node wrote under services/<name> and
// globals/<name>: undecodable data under names shaped like ours and
// others. They stay through the checks (the library must live with other
// clients' junk) and are deleted after.
var garbage = fault{name: "garbage", inject: func(tr *Trial) (func(), error) {
	r := tr.r
	var dirs []string
	for _, svc := range append([]string{workerService}, r.cfg.Services...) {
		dirs = append(dirs, path.Join(r.root, "services", svc))
	}
	for _, g := range append([]string{bossName}, r.cfg.Globals...) {
		dirs = append(dirs, path.Join(r.root, "globals", g))
	}
	dir := dirs[tr.Rand.IntN(len(dirs))]
	junk := make([]byte, 1+tr.Rand.IntN(64))
	for i := range junk {
		junk[i] = byte(tr.Rand.IntN(256))
	}
	var name string
	var flags int32
	switch tr.Rand.IntN(4) {
	case 0: // a candidate's name: it queues like one
		name, flags = fmt.Sprintf("_c_%016x-c-", tr.Rand.Uint64()), zk.FlagSequence
	case 1: // a registration's name
		name = fmt.Sprintf("%016x-%016x", tr.Rand.Uint64(), tr.Rand.Uint64())
	case 2: // anything else
		name = fmt.Sprintf("junk-%d", tr.Rand.IntN(1000))
	case 3: // empty data
		name, junk = fmt.Sprintf("empty-%d", tr.Rand.IntN(1000)), nil
	}
	var created string
	err := r.foreignDo("create garbage", func(c *zk.Conn) error {
		// The parent is a container that may be gone; make it as one.
		if _, err := c.CreateContainer(dir, nil, zk.FlagContainer, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
		var err error
		created, err = c.Create(path.Join(dir, name), junk, flags, zk.WorldACL(zk.PermAll))
		if errors.Is(err, zk.ErrNodeExists) {
			created, err = path.Join(dir, name), nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	tr.Fault("foreign client writes garbage %s (%d bytes)", created, len(junk))
	tr.After(func() {
		if err := r.foreignDelete(created); err != nil {
			r.t.Logf("delete garbage %s: %v", created, err)
		}
	})
	tr.Hold(tr.Between(tr.SessionTimeout()/2, tr.SessionTimeout()))
	return nil, nil
}}

// burstCandidates fires RegisterCandidate and Resign for one name at a
// node, alternating, without waiting for answers; then, once every answer
// is in, a last RegisterCandidate that settles the node as a candidate.
var burstCandidates = fault{name: "burst-candidates", inject: func(tr *Trial) (func(), error) {
	n, err := tr.pickNode()
	if err != nil {
		return nil, err
	}
	names := append([]string{bossName}, tr.r.cfg.Globals...)
	name := names[tr.Rand.IntN(len(names))]
	k := 4 + tr.Rand.IntN(16)
	tr.Fault("%s: %d × RegisterCandidate/Resign %q at once", n.label, k, name)
	var answers []<-chan Event
	for i := range k {
		verb := "cand"
		if (i+tr.Rand.IntN(2))%2 == 1 {
			verb = "resign"
		}
		answers = append(answers, tr.r.op(n, name, verb, name))
	}
	waitAll(answers)
	return func() { waitAll([]<-chan Event{tr.r.op(n, name, "cand", name)}) }, nil
}}

// burstRegistrations fires Register and Unregister of one new actor under
// one or two services at a node, without waiting; then registers it under
// each, once every answer is in.
var burstRegistrations = fault{name: "burst-registrations", inject: func(tr *Trial) (func(), error) {
	r := tr.r
	n, err := tr.pickNode()
	if err != nil {
		return nil, err
	}
	svcs := []string{r.cfg.Services[tr.Rand.IntN(len(r.cfg.Services))]}
	if tr.Rand.IntN(2) == 0 {
		svcs = append(svcs, r.cfg.Services[tr.Rand.IntN(len(r.cfg.Services))])
	}
	first := <-r.spawn(n, svcs[0])
	if first.Arg(1) != "ok" {
		tr.Note("%s: spawn for the burst failed: %s", n.label, first.Rest(2))
		return nil, nil
	}
	pid := first.Arg(2)
	id := pid[len(pid)-len(lastPart(pid)):]
	k := 4 + tr.Rand.IntN(16)
	tr.Fault("%s: %d × Register/Unregister %s under %v at once", n.label, k, pid, svcs)
	var answers []<-chan Event
	for range k {
		svc := svcs[tr.Rand.IntN(len(svcs))]
		verb := "register"
		if tr.Rand.IntN(2) == 0 {
			verb = "unregister"
		}
		answers = append(answers, r.op(n, id, verb, svc, id))
	}
	waitAll(answers)
	return func() {
		for _, svc := range svcs {
			waitAll([]<-chan Event{r.op(n, id, "register", svc, id)})
		}
	}, nil
}}

func lastPart(pid string) string {
	for i := len(pid) - 1; i >= 0; i-- {
		if pid[i] == '/' {
			return pid[i+1:]
		}
	}
	return pid
}

// waitAll waits for every answer, each within the node's command bound
// (more only for a frozen node).
func waitAll(chs []<-chan Event) {
	for _, ch := range chs {
		select {
		case <-ch:
		case <-time.After(3 * commandWait):
		}
	}
}
