package chaos

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/internal/records"
)

// leftovers: within session timeout + 3 s of the heal, no running node's
// session owns an ephemeral znode that it has been told to give up: a
// registration of a (service, PID) whose removal was acknowledged
// (Unregister returned, the actor stopped), a candidate znode of a name
// whose Resign was acknowledged, or a second candidate znode of one
// candidacy. no-ephemerals checks the same for every node once they have
// all stopped; this one checks after every trial, on the live nodes.
// Pairs with an operation in flight or in doubt are not judged; nor are
// paused or dead nodes (their sessions' expiry is no-ephemerals' part).
type leftovers struct{ persisting }

func (*leftovers) Name() string  { return "leftovers" }
func (*leftovers) Settles() bool { return true }

func (inv *leftovers) Check(tr *Trial) []Violation {
	r := tr.r
	deadline := tr.healedAt + int64(r.cfg.SessionTimeout+3*time.Second)
	var probs []problem
	ok, why := tr.Await(deadline, func() (bool, string) {
		probs = probs[:0]
		found, err := r.ephemerals()
		if err != nil {
			return false, err.Error()
		}
		r.withState(func(s *state) { probs = s.leftovers(found) })
		return len(probs) == 0, ""
	})
	if ok {
		inv.clear()
		return nil
	}
	if why != "" {
		return []Violation{tr.Violation(inv.Name(), deadline, "cannot read the tree: "+why).Key(fmt.Sprintf("%s/%d", tr.class.Name(), tr.Index))}
	}
	return inv.report(tr, inv.Name(), deadline, probs)
}

// ephemeral is an ephemeral znode under services/<name> or globals/<name>.
type ephemeral struct {
	path   string
	global bool   // a candidate znode (else a registration)
	name   string // the service or global name
	owner  int64  // its session
	pid    string // a registration's PID, "" if its data is not one
}

// ephemerals reads every ephemeral registration and candidate znode with
// the foreign client.
func (r *Run) ephemerals() ([]ephemeral, error) {
	var out []ephemeral
	for _, top := range []string{"services", "globals"} {
		names, err := r.children(path.Join(r.root, top))
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			dir := path.Join(r.root, top, name)
			kids, err := r.children(dir)
			if err != nil {
				return nil, err
			}
			for _, kid := range kids {
				p := path.Join(dir, kid)
				var data []byte
				var st *zk.Stat
				err := r.foreignDo("get "+p, func(c *zk.Conn) error {
					var err error
					data, st, err = c.Get(p)
					return err
				})
				if errors.Is(err, zk.ErrNoNode) {
					continue
				}
				if err != nil {
					return nil, err
				}
				if st.EphemeralOwner == 0 {
					continue
				}
				e := ephemeral{path: p, global: top == "globals", name: name, owner: st.EphemeralOwner}
				if !e.global {
					if rec, err := records.Registration(data); err == nil {
						e.pid = rec.GetPid().GetAddress() + "/" + rec.GetPid().GetId()
					}
				}
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// leftovers judges the ephemeral znodes found against what the history
// says each running node holds.
func (s *state) leftovers(found []ephemeral) []problem {
	var probs []problem
	cands := map[candKey][]string{} // candidate znodes by (node, name)
	for _, e := range found {
		label := s.sessions[e.owner]
		if label == "" || s.nodeState[label] != "running" {
			continue // another client's, or a node's that is paused or dead
		}
		if e.global {
			k := candKey{label, e.name}
			cands[k] = append(cands[k], e.path)
			continue
		}
		if e.pid == "" {
			continue
		}
		id := e.pid[strings.LastIndexByte(e.pid, '/')+1:]
		st, known := s.regs[regKey{label, e.name, e.pid}]
		if s.pending[label+" "+id] > 0 || !known || st != absent {
			continue
		}
		probs = append(probs, problem{key: e.path, focus: e.pid, what: fmt.Sprintf(
			"%s (session %#x of %s) registers %s under %q, which it no longer should (unregistered or stopped)",
			e.path, e.owner, label, e.pid, e.name)})
	}
	for k, paths := range cands {
		if s.pending[k.src+" "+k.name] > 0 {
			continue
		}
		slices.Sort(paths)
		switch st := s.cands[k]; {
		case st == absent:
			for _, p := range paths {
				probs = append(probs, problem{key: p, focus: k.name, what: fmt.Sprintf(
					"%s: a candidate znode of %s, which resigned %q", p, k.src, k.name)})
			}
		case st == present && len(paths) > 1:
			probs = append(probs, problem{key: strings.Join(paths, ","), focus: k.name, what: fmt.Sprintf(
				"%s holds %d candidate znodes for %q, one candidacy: %s", k.src, len(paths), k.name, strings.Join(paths, ", "))})
		}
	}
	slices.SortFunc(probs, func(a, b problem) int { return strings.Compare(a.what, b.what) })
	return probs
}
