package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/records"
)

// The kinds of finding. They are stable: scripts may match on them.
const (
	kindGarbage        = "garbage"           // a znode that is not what its place in the layout calls for
	kindStaleSession   = "stale-session"     // an ephemeral whose session is connected to none of the servers
	kindForeignSession = "foreign-session"   // a candidate or registration whose session is no node's
	kindNoLeader       = "no-leader"         // live candidates, but the head of the queue is unreadable
	kindACL            = "acl"               // an ACL that differs from the parent's, or world-writable beside a digest
	kindDuplicateAddr  = "duplicate-address" // two nodes with one address
	kindInconsistent   = "inconsistent"      // records that contradict each other (a claim without its item, ...)
)

// Finding is one thing that looks wrong.
type Finding struct {
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	Problem string `json:"problem"`
}

func (f Finding) String() string { return f.Kind + " " + f.Path + ": " + f.Problem }

// sessions is what doctor knows about the sessions that own ephemerals.
type sessions struct {
	nodes    map[int64]string // owner of a node znode -> node id
	live     map[int64]string // connected (cons) -> server
	complete bool             // every server answered cons
	consErr  error
	servers  string
}

// doctor checks a tree read with ACLs.
type doctor struct {
	root     *znode
	sessions sessions
	probe    prober // nil: findings are not confirmed by a second read
	findings []Finding
}

func (d *doctor) add(kind, path, format string, args ...any) {
	d.findings = append(d.findings, Finding{Kind: kind, Path: path, Problem: fmt.Sprintf(format, args...)})
}

func diagnose(tree *znode, s sessions, probe prober) []Finding {
	d := &doctor{root: tree, sessions: s, probe: probe}
	d.checkLayout()
	d.checkACLs(tree)
	sort.SliceStable(d.findings, func(i, j int) bool { return d.findings[i].Path < d.findings[j].Path })
	return d.findings
}

func (d *doctor) checkLayout() {
	for _, z := range d.root.children {
		switch z.name {
		case nodesDir:
			d.persistent(z)
			d.checkNodes(z)
		case servicesDir:
			d.persistent(z)
			for _, dir := range z.children {
				d.checkDir(dir)
				for _, reg := range dir.children {
					d.checkRegistration(dir.name, reg)
				}
			}
		case globalsDir:
			d.persistent(z)
			for _, dir := range z.children {
				d.checkDir(dir)
				d.checkGlobal(dir)
			}
		case activationsDir:
			d.persistent(z)
			for _, dir := range z.children {
				d.checkDir(dir)
				d.checkActivations(dir)
			}
		case queuesDir:
			d.persistent(z)
			for _, dir := range z.children {
				d.checkQueue(dir)
			}
		case rolesDir:
			d.persistent(z)
			for _, dir := range z.children {
				d.checkRoleSet(dir)
			}
		case locksDir:
			d.persistent(z)
			for _, dir := range z.children {
				d.checkLock(dir)
			}
		case barriersDir:
			d.persistent(z)
			for _, dir := range z.children {
				d.checkBarrier(dir)
			}
		case configDir:
			d.persistent(z)
			for _, svc := range z.children {
				d.checkConfig(svc)
			}
		case oldJobsDir:
			d.add(kindGarbage, z.path, "cmd/boss's old job store, which it no longer reads (it keeps its jobs in %s/%s/%s): its %d job(s) are done by nobody; submit them again, then delete it",
				d.root.path, queuesDir, jobsQueue, len(z.children))
		default:
			d.add(kindGarbage, z.path, "not part of zkactor's layout (%s)", strings.Join(layoutDirs, ", "))
		}
	}
}

// layoutDirs are the children of the root that zkactor's packages keep.
var layoutDirs = []string{nodesDir, servicesDir, globalsDir, activationsDir, queuesDir, rolesDir, locksDir, barriersDir, configDir}

// oldJobsDir is where cmd/boss kept its jobs before it used a work queue.
const oldJobsDir = "jobs"

func (d *doctor) persistent(z *znode) {
	if z.ephemeral() {
		d.add(kindGarbage, z.path, "ephemeral (session %s) where zkactor keeps a persistent znode", session(z.stat.EphemeralOwner))
	}
}

// checkDir checks a service's or a global's znode (a container).
func (d *doctor) checkDir(z *znode) {
	if err := cluster.ValidateName(z.name); err != nil {
		d.add(kindGarbage, z.path, "not a name zkactor accepts: %v", err)
	}
	d.persistent(z)
	if len(z.data) > 0 {
		d.add(kindGarbage, z.path, "%d bytes of data where zkactor stores none", len(z.data))
	}
}

// leaf checks that a record znode has no children.
func (d *doctor) leaf(z *znode) {
	if len(z.children) > 0 {
		d.add(kindGarbage, z.path, "%d children under a record znode", len(z.children))
	}
}

func (d *doctor) checkNodes(dir *znode) {
	byAddr := map[string][]string{}
	sessionsAt := map[string]map[int64]bool{} // address -> owners
	for _, z := range dir.children {
		d.leaf(z)
		rec, err := records.Node(z.data)
		if err != nil {
			d.add(kindGarbage, z.path, "%v", err)
		} else {
			if rec.GetId() != z.name {
				d.add(kindGarbage, z.path, "the record names node %q", rec.GetId())
			}
			byAddr[rec.GetAddress()] = append(byAddr[rec.GetAddress()], z.name)
			if sessionsAt[rec.GetAddress()] == nil {
				sessionsAt[rec.GetAddress()] = map[int64]bool{}
			}
			sessionsAt[rec.GetAddress()][z.stat.EphemeralOwner] = true
		}
		if !z.ephemeral() {
			d.add(kindGarbage, z.path, "persistent: a node znode must be ephemeral, or it outlives its node")
			continue
		}
		d.checkLive(z, "node "+z.name)
	}
	addrs := make([]string, 0, len(byAddr))
	for a, ids := range byAddr {
		// Nodes of one session are one process (a provider member and
		// its singletons' node, <id>-singletons).
		if len(ids) > 1 && (len(sessionsAt[a]) > 1 || sessionsAt[a][0]) {
			addrs = append(addrs, a)
		}
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		d.add(kindDuplicateAddr, dir.path, "nodes %s share the address %s", strings.Join(byAddr[a], ", "), a)
	}
}

func (d *doctor) checkRegistration(service string, z *znode) {
	d.leaf(z)
	nodeID, shaped := registrationNode(z.name)
	if !shaped {
		d.add(kindGarbage, z.path, "not a registration's name (<node-id>-<16 hex digits>)")
	}
	rec, err := records.Registration(z.data)
	switch {
	case err != nil:
		d.add(kindGarbage, z.path, "%v", err)
	case rec.GetName() != service:
		d.add(kindGarbage, z.path, "the record registers service %q", rec.GetName())
	case shaped && rec.GetNodeId() != nodeID:
		d.add(kindGarbage, z.path, "the record names node %q", rec.GetNodeId())
	}
	if !z.ephemeral() {
		d.add(kindGarbage, z.path, "persistent: a registration must be ephemeral, or it outlives its node")
		return
	}
	d.checkOwner(z)
}

func (d *doctor) checkGlobal(dir *znode) {
	for _, z := range dir.children {
		d.leaf(z)
		if _, ok := parseCandidate(z.name); !ok {
			d.add(kindGarbage, z.path, "not a candidate's name (_c_<32 hex digits>-c-<10 digits>): takes no part in the election")
			continue
		}
		if !z.ephemeral() {
			d.add(kindGarbage, z.path, "persistent: takes no part in the election (only ephemeral candidates do)")
			continue
		}
		rec, err := records.Candidate(z.data)
		if err != nil {
			d.add(kindGarbage, z.path, "%v", err)
		} else if rec.GetName() != dir.name {
			d.add(kindGarbage, z.path, "the record stands for global %q", rec.GetName())
		}
		d.checkOwner(z)
	}
	if q := electionQueue(dir); len(q) > 0 {
		if _, err := records.Candidate(q[0].data); err != nil {
			d.add(kindNoLeader, dir.path, "no readable leader while %d live candidate(s) queue: the head %s is not a Candidate record, so WhereisGlobal names no global until it goes", len(q), q[0].name)
		}
	}
}

// checkOwner checks the session behind a candidate or a registration: it
// should be a live node's, the session that owns a znode under nodes/.
func (d *doctor) checkOwner(z *znode) {
	owner := z.stat.EphemeralOwner
	if id, ok := d.sessions.nodes[owner]; ok {
		d.checkLive(z, "node "+id)
		return
	}
	s := d.sessions
	prefix := fmt.Sprintf("session %s owns no node znode under %s/%s", session(owner), d.root.path, nodesDir)
	switch server, live := s.live[owner]; {
	case live:
		d.add(kindForeignSession, z.path, "%s; it is connected to %s: a client that is not a live zkactor node", prefix, server)
	case s.complete:
		d.add(kindStaleSession, z.path, "%s and is connected to none of %s: its owner is gone, the znode goes when the session expires", prefix, s.servers)
	default:
		d.add(kindForeignSession, z.path, "%s; whether it is alive cannot be told (%v)", prefix, s.consErr)
	}
}

// checkLive flags an ephemeral whose session is connected to none of the
// servers, when all of them answered cons.
func (d *doctor) checkLive(z *znode, whose string) {
	s := d.sessions
	if _, live := s.live[z.stat.EphemeralOwner]; live || !s.complete {
		return
	}
	d.add(kindStaleSession, z.path, "session %s (%s) is connected to none of %s: gone or between connections; it expires after its timeout",
		session(z.stat.EphemeralOwner), whose, s.servers)
}

// checkACLs flags, below the root, a znode whose ACL differs from its
// parent's (zkactor creates every znode of a cluster with the one ACL of
// its session), and a world-writable ACL beside a digest one (a digest ACL
// protects nothing if anyone may write too). The root itself is not
// compared with its parent, which zkactor creates open.
func (d *doctor) checkACLs(z *znode) {
	if z.aclErr != nil {
		d.add(kindACL, z.path, "ACL unreadable: %v", z.aclErr)
	} else if worldWritableBesideDigest(z.acl) {
		d.add(kindACL, z.path, "world-writable (%s) beside a digest ACL", formatACL(z.acl))
	}
	for _, c := range z.children {
		if z.aclErr == nil && c.aclErr == nil && !sameACL(z.acl, c.acl) {
			d.add(kindACL, c.path, "ACL %s differs from its parent's %s", formatACL(c.acl), formatACL(z.acl))
		}
		d.checkACLs(c)
	}
}

func worldWritableBesideDigest(acl []zk.ACL) bool {
	digest, world := false, false
	for _, a := range acl {
		switch {
		case a.Scheme == "digest":
			digest = true
		case a.Scheme == "world" && a.Perms&^zk.PermRead != 0:
			world = true
		}
	}
	return digest && world
}

func aclStrings(acl []zk.ACL) []string {
	out := make([]string, len(acl))
	for i, a := range acl {
		out[i] = a.Scheme + ":" + a.ID + ":" + perms(a.Perms)
	}
	sort.Strings(out)
	return out
}

func sameACL(a, b []zk.ACL) bool { return slices.Equal(aclStrings(a), aclStrings(b)) }

func formatACL(acl []zk.ACL) string { return strings.Join(aclStrings(acl), ",") }

// perms spells permissions as zkCli does: cdrwa.
func perms(p int32) string {
	var b strings.Builder
	for _, x := range []struct {
		bit  int32
		char byte
	}{{zk.PermCreate, 'c'}, {zk.PermDelete, 'd'}, {zk.PermRead, 'r'}, {zk.PermWrite, 'w'}, {zk.PermAdmin, 'a'}} {
		if p&x.bit != 0 {
			b.WriteByte(x.char)
		}
	}
	return b.String()
}

// nodeSessions returns the owners of the ephemeral znodes under nodes/.
func nodeSessions(tree *znode) map[int64]string {
	out := map[int64]string{}
	for _, z := range tree.child(nodesDir).childList() {
		if z.ephemeral() {
			out[z.stat.EphemeralOwner] = z.name
		}
	}
	return out
}

func writeFindings(w io.Writer, findings []Finding, asJSON bool) error {
	if asJSON {
		if findings == nil {
			findings = []Finding{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Findings []Finding `json:"findings"`
		}{findings})
	}
	for _, f := range findings {
		if _, err := fmt.Fprintln(w, f); err != nil {
			return err
		}
	}
	return nil
}
