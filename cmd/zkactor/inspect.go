package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/internal/records"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// Report is what inspect shows, and with -json its document. The field
// names are stable: scripts may rely on them (see the package doc).
type Report struct {
	Root       string       `json:"root"`
	Servers    []string     `json:"servers"`
	ReadAt     time.Time    `json:"read_at"`
	Nodes      []Node       `json:"nodes"`
	Services   []Service    `json:"services"`
	Globals    []Global     `json:"globals"`
	Jobs       []Job        `json:"jobs"`
	Unreadable []Unreadable `json:"unreadable"`

	Activations []KindActivations `json:"activations"`
	Queues      []WorkQueue       `json:"queues"`
	Roles       []RoleSet         `json:"roles"`
	Locks       []Lock            `json:"locks"`
	Barriers    []Barrier         `json:"barriers"`
	Configs     []Config          `json:"configs"`
}

type Node struct {
	ID        string    `json:"id"`
	Address   string    `json:"address"`
	StartedAt time.Time `json:"started_at,omitzero"`
	Session   string    `json:"session"`
	// Kinds are the protoactor kinds a cluster member hosts (package
	// provider); empty for a node that is not a member.
	Kinds []string `json:"kinds"`
}

type Service struct {
	Name    string   `json:"name"`
	Members []Member `json:"members"`
}

type Member struct {
	Znode        string            `json:"znode"`
	PID          PID               `json:"pid"`
	NodeID       string            `json:"node_id"`
	NodeAddress  string            `json:"node_address"`
	Metadata     map[string]string `json:"metadata"`
	RegisteredAt time.Time         `json:"registered_at,omitzero"`
	Session      string            `json:"session"`
}

type PID struct {
	Address string `json:"address"`
	ID      string `json:"id"`
}

func (p PID) String() string { return p.Address + "/" + p.ID }

// Global is one name's election. Leader is the head of the queue when its
// data is a readable Candidate (what WhereisGlobal returns), else null;
// Epoch is the head's czxid (0 when nobody queues).
type Global struct {
	Name   string      `json:"name"`
	Leader *Candidate  `json:"leader"`
	Epoch  int64       `json:"epoch"`
	Queue  []Candidate `json:"queue"`
}

// Candidate is one candidate znode that takes part in the election
// (candidate-shaped name, ephemeral), in queue order. PID is null and Error
// says why when its data is not a Candidate record.
type Candidate struct {
	Position    int       `json:"position"`
	Znode       string    `json:"znode"`
	Sequence    int64     `json:"sequence"`
	PID         *PID      `json:"pid"`
	NodeID      string    `json:"node_id"`
	NodeAddress string    `json:"node_address"`
	Since       time.Time `json:"since,omitzero"`
	Epoch       int64     `json:"epoch"`
	Session     string    `json:"session"`
	Error       string    `json:"error,omitempty"`
}

// Job is one of cmd/boss's jobs: an item of the work queue "jobs" whose
// key is the job's id and whose payload its text. SubmittedAt is the
// item's PutAt; Claim is the boss's claim while one delegates it.
type Job struct {
	ID          string    `json:"id"`
	Text        string    `json:"text"`
	SubmittedAt time.Time `json:"submitted_at,omitzero"`
	Item        string    `json:"item"`
	Key         string    `json:"key"`
	Attempts    int       `json:"attempts"`
	Producer    string    `json:"producer"`
	PutAt       time.Time `json:"put_at,omitzero"`
	Claim       *Claim    `json:"claim"`
}

// Unreadable is a znode inspect skipped: its data is not the record its
// place calls for. zkactor doctor tells more.
type Unreadable struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

func session(owner int64) string { return fmt.Sprintf("0x%016x", uint64(owner)) }

func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime().UTC()
}

func pidOf(p *pb.PID) PID { return PID{Address: p.GetAddress(), ID: p.GetId()} }

// buildReport reads the tree the way zkactor's nodes do: records that do
// not decode are listed as unreadable, and a global's queue follows the
// election's rule (candidate-shaped and ephemeral; global/queue.go), a
// lock's and a barrier's theirs.
func buildReport(tree *znode, servers []string, readAt time.Time) *Report {
	r := &Report{
		Root: tree.path, Servers: servers, ReadAt: readAt.UTC(),
		Nodes: []Node{}, Services: []Service{}, Globals: []Global{}, Jobs: []Job{}, Unreadable: []Unreadable{},
		Activations: []KindActivations{}, Queues: []WorkQueue{}, Roles: []RoleSet{}, Locks: []Lock{}, Barriers: []Barrier{}, Configs: []Config{},
	}
	skip := r.skip

	for _, z := range tree.child(nodesDir).childList() {
		rec, err := records.Node(z.data)
		if err != nil {
			skip(z, err)
			continue
		}
		kinds := rec.GetKinds()
		if kinds == nil {
			kinds = []string{}
		}
		r.Nodes = append(r.Nodes, Node{ID: z.name, Address: rec.GetAddress(), StartedAt: timeOf(rec.GetStartedAt()), Session: session(z.stat.EphemeralOwner), Kinds: kinds})
	}
	for _, dir := range tree.child(servicesDir).childList() {
		s := Service{Name: dir.name, Members: []Member{}}
		for _, z := range dir.children {
			rec, err := records.Registration(z.data)
			if err != nil {
				skip(z, err)
				continue
			}
			md := rec.GetMetadata()
			if md == nil {
				md = map[string]string{}
			}
			s.Members = append(s.Members, Member{
				Znode: z.name, PID: pidOf(rec.GetPid()), NodeID: rec.GetNodeId(), NodeAddress: rec.GetNodeAddress(),
				Metadata: md, RegisteredAt: timeOf(rec.GetRegisteredAt()), Session: session(z.stat.EphemeralOwner),
			})
		}
		r.Services = append(r.Services, s)
	}
	for _, dir := range tree.child(globalsDir).childList() {
		g := Global{Name: dir.name, Queue: []Candidate{}}
		for i, z := range electionQueue(dir) {
			seq, _ := parseCandidate(z.name)
			c := Candidate{Position: i, Znode: z.name, Sequence: seq, Epoch: z.stat.Czxid, Session: session(z.stat.EphemeralOwner)}
			if rec, err := records.Candidate(z.data); err != nil {
				c.Error = err.Error()
				skip(z, err)
			} else {
				pid := pidOf(rec.GetPid())
				c.PID, c.NodeID, c.NodeAddress, c.Since = &pid, rec.GetNodeId(), rec.GetNodeAddress(), timeOf(rec.GetSince())
			}
			g.Queue = append(g.Queue, c)
		}
		if len(g.Queue) > 0 {
			g.Epoch = g.Queue[0].Epoch
			if g.Queue[0].PID != nil {
				head := g.Queue[0]
				g.Leader = &head
			}
		}
		r.Globals = append(r.Globals, g)
	}
	r.addActivations(tree)
	r.addQueues(tree) // and the jobs
	r.addRoles(tree)
	r.addLocks(tree)
	r.addBarriers(tree)
	r.addConfigs(tree)
	return r
}

func (z *znode) childList() []*znode {
	if z == nil {
		return nil
	}
	return z.children
}

// electionQueue returns the children of a global's znode that take part in
// its election, in queue order: candidate-shaped names of ephemeral
// znodes, by sequence number (global/queue.go, takesPart).
func electionQueue(dir *znode) []*znode {
	var q []*znode
	for _, z := range dir.children {
		if _, ok := parseCandidate(z.name); ok && z.ephemeral() {
			q = append(q, z)
		}
	}
	sort.SliceStable(q, func(i, j int) bool {
		a, _ := parseCandidate(q[i].name)
		b, _ := parseCandidate(q[j].name)
		return a < b
	})
	return q
}

// decodeJob decodes a job as cmd/boss does (cmd/boss/jobs.go): id is
// the item's key (or the znode's name in the old job store), data the
// item's payload (or the znode's data).
func decodeJob(id string, data []byte) (*bossv1.Job, error) {
	if _, ok := jobToken(id); !ok {
		return nil, fmt.Errorf("key %q is not job-<token> (1-64 letters, digits, '-', '_')", id)
	}
	job := &bossv1.Job{}
	if err := proto.Unmarshal(data, job); err != nil {
		return nil, fmt.Errorf("not a boss.v1.Job: %w", err)
	}
	if job.GetText() == "" {
		return nil, fmt.Errorf("a job without text")
	}
	return job, nil
}

// writeJSON writes the report as one JSON document: indented, or on one
// line (for -watch, one document per line).
func writeJSON(w io.Writer, r *Report, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(r)
}

// excerptLen bounds the job text and metadata shown in the text output.
const excerptLen = 60

func excerpt(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= excerptLen {
		return s
	}
	return string([]rune(s)[:excerptLen-1]) + "…"
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeText writes the report for people: one section per part of the
// layout, columns aligned.
func writeText(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }

	p("zkactor at %s, root %s, read %s", strings.Join(r.Servers, ","), r.Root, formatTime(r.ReadAt))

	p("\nNODES (%d)", len(r.Nodes))
	if len(r.Nodes) > 0 {
		p("  ID\tADDRESS\tSTARTED\tSESSION\tKINDS")
	}
	for _, n := range r.Nodes {
		p("  %s\t%s\t%s\t%s\t%s", n.ID, n.Address, formatTime(n.StartedAt), n.Session, orDash(strings.Join(n.Kinds, ",")))
	}

	p("\nSERVICES (%d)", len(r.Services))
	for _, s := range r.Services {
		p("  %s (%d)", s.Name, len(s.Members))
		if len(s.Members) > 0 {
			p("    PID\tNODE\tREGISTERED\tMETADATA")
		}
		for _, m := range s.Members {
			p("    %s\t%s\t%s\t%s", m.PID, orDash(m.NodeID), formatTime(m.RegisteredAt), orDash(formatMetadata(m.Metadata)))
		}
	}

	p("\nGLOBALS (%d)", len(r.Globals))
	for _, g := range r.Globals {
		switch {
		case g.Leader != nil:
			p("  %s: leader %s on %s, epoch %d", g.Name, *g.Leader.PID, orDash(g.Leader.NodeID), g.Epoch)
		case len(g.Queue) > 0:
			p("  %s: no readable leader (the head is not a Candidate record), epoch %d", g.Name, g.Epoch)
		default:
			p("  %s: no candidates", g.Name)
		}
		if len(g.Queue) > 0 {
			p("    #\tSEQUENCE\tNODE\tPID\tSESSION")
		}
		for _, c := range g.Queue {
			pid := "(unreadable: " + c.Error + ")"
			if c.PID != nil {
				pid = c.PID.String()
			}
			p("    %d\t%010d\t%s\t%s\t%s", c.Position, c.Sequence, orDash(c.NodeID), pid, c.Session)
		}
	}

	p("\nJOBS (%d)", len(r.Jobs))
	if len(r.Jobs) > 0 {
		p("  ID\tSUBMITTED\tATTEMPTS\tCLAIMED BY\tTEXT")
	}
	for _, j := range r.Jobs {
		p("  %s\t%s\t%d\t%s\t%s", j.ID, formatTime(j.SubmittedAt), j.Attempts, formatClaim(j.Claim), excerpt(j.Text))
	}

	writeRecipes(p, r)

	if len(r.Unreadable) > 0 {
		p("\n%d znode(s) skipped, not the records their place calls for (zkactor doctor tells more):", len(r.Unreadable))
		for _, u := range r.Unreadable {
			p("  %s: %s", u.Path, u.Error)
		}
	}
	return tw.Flush()
}

func formatMetadata(md map[string]string) string {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + md[k]
	}
	return excerpt(strings.Join(parts, " "))
}
