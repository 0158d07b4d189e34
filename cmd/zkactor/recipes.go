package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/zkactor/zkactor/internal/records"
	barrierv1 "github.com/zkactor/zkactor/proto/recipes/barrier/v1"
	configv1 "github.com/zkactor/zkactor/proto/recipes/config/v1"
	lockv1 "github.com/zkactor/zkactor/proto/recipes/lock/v1"
	rolematchv1 "github.com/zkactor/zkactor/proto/recipes/rolematch/v1"
	workqueuev1 "github.com/zkactor/zkactor/proto/recipes/workqueue/v1"
)

// The parts of the report that package provider and the recipes keep under
// the root. The recipes' own readers (rolematch's Holders and Applicants,
// global's Queue) need a node of their own (a registry, a session that
// writes), which this command does not start; so it reads the znodes and
// decodes their records by the rules each package documents.

// KindActivations is one protoactor kind's activations (package provider).
type KindActivations struct {
	Kind        string       `json:"kind"`
	Activations []Activation `json:"activations"`
}

// Activation is one virtual actor's activation; Epoch is its znode's czxid.
type Activation struct {
	Identity    string    `json:"identity"`
	PID         PID       `json:"pid"`
	MemberID    string    `json:"member_id"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	Epoch       int64     `json:"epoch"`
	Session     string    `json:"session"`
}

// WorkQueue is one durable work queue (recipes/workqueue): its items, oldest
// first, each with the claim that holds it, if any.
type WorkQueue struct {
	Name  string `json:"name"`
	Items []Item `json:"items"`
	Held  int    `json:"held"`
	// Waiting counts the Takes waiting in line for an item (waiters/).
	Waiting int `json:"waiting"`
}

// Item is one readable item of a work queue. Items whose data is not an
// Item record for their key are skipped, as takers skip them.
type Item struct {
	ID          string    `json:"id"`
	Key         string    `json:"key"`
	Sequence    int64     `json:"sequence"`
	Producer    string    `json:"producer"`
	PutAt       time.Time `json:"put_at,omitzero"`
	Attempts    int       `json:"attempts"`
	PayloadSize int       `json:"payload_size"`
	Claim       *Claim    `json:"claim"`
}

// Claim is the ephemeral znode that holds an item for its taker. A claim
// holds the item whatever its data; Error says why Taker is unknown.
type Claim struct {
	Taker   string    `json:"taker"`
	TakenAt time.Time `json:"taken_at,omitzero"`
	Session string    `json:"session"`
	Error   string    `json:"error,omitempty"`
}

// RoleSet is one set of roles (recipes/rolematch): the roles posted or
// held, and the applications.
type RoleSet struct {
	Name       string      `json:"set"`
	Roles      []Role      `json:"roles"`
	Applicants []Applicant `json:"applicants"`
}

// Role is a role with a spec (Posted), or an assignment without one.
// Spec is "" (no spec), "bytes" or the type URL of the spec's message;
// SpecSize its size.
type Role struct {
	Name     string      `json:"name"`
	Posted   bool        `json:"posted"`
	PostedAt time.Time   `json:"posted_at,omitzero"`
	Spec     string      `json:"spec"`
	SpecSize int         `json:"spec_size"`
	Holder   *RoleHolder `json:"holder"`
}

// RoleHolder is a role's assignment: the role is held, whatever its data;
// PID is null and Error says why when the data is not an Assignment.
// Epoch is the assignment's czxid.
type RoleHolder struct {
	PID       *PID      `json:"pid"`
	NodeID    string    `json:"node_id"`
	Applicant string    `json:"applicant"`
	Since     time.Time `json:"since,omitzero"`
	Epoch     int64     `json:"epoch"`
	Session   string    `json:"session"`
	Error     string    `json:"error,omitempty"`
}

// Applicant is one application for a set's roles; Held counts the readable
// assignments that name it, Room is Limit − Held (as rolematch.Applicants).
type Applicant struct {
	ID      string    `json:"id"`
	NodeID  string    `json:"node_id"`
	Limit   int       `json:"limit"`
	Held    int       `json:"held"`
	Room    int       `json:"room"`
	Since   time.Time `json:"since,omitzero"`
	Session string    `json:"session"`
}

// Lock is one lock (recipes/lock): its live waiters in queue order; the
// first holds it (or takes it once its lease is proven), whatever its
// data, with the token of its znode's czxid.
type Lock struct {
	Name   string   `json:"name"`
	Holder *Waiter  `json:"holder"`
	Token  int64    `json:"token"`
	Queue  []Waiter `json:"queue"`
}

// Waiter is one ephemeral waiter-shaped znode of a lock. PID is the actor
// the lock is taken for (null when the record names none, or is
// unreadable: then Error says why).
type Waiter struct {
	Position int       `json:"position"`
	Znode    string    `json:"znode"`
	Sequence int64     `json:"sequence"`
	PID      *PID      `json:"pid"`
	NodeID   string    `json:"node_id"`
	Since    time.Time `json:"since,omitzero"`
	Token    int64     `json:"token"`
	Session  string    `json:"session"`
	Error    string    `json:"error,omitempty"`
}

// Barrier is one double barrier (recipes/barrier): its ready znode, if
// any, and its live participants in sequence order.
type Barrier struct {
	Name         string        `json:"name"`
	Ready        *Ready        `json:"ready"`
	Participants []Participant `json:"participants"`
}

// Ready is a barrier's ready znode: it admits the participants up to
// LastSequence. One that is not a Ready record with a size admits nobody
// (Error says why).
type Ready struct {
	Size         int       `json:"size"`
	LastSequence int64     `json:"last_sequence"`
	Since        time.Time `json:"since,omitzero"`
	Error        string    `json:"error,omitempty"`
}

// Participant is one ephemeral participant-shaped znode of a barrier;
// Admitted when ready admits its sequence.
type Participant struct {
	Position int       `json:"position"`
	Znode    string    `json:"znode"`
	Sequence int64     `json:"sequence"`
	NodeID   string    `json:"node_id"`
	Since    time.Time `json:"since,omitzero"`
	Session  string    `json:"session"`
	Admitted bool      `json:"admitted"`
	Error    string    `json:"error,omitempty"`
}

// Config is one service's config record (recipes/config) and its
// overrides. Values is the record's JSON object, null when the data is not
// a Record (Error says why); Version is the znode's data version, the one
// a compare-and-set write names.
type Config struct {
	Service    string          `json:"service"`
	Version    int32           `json:"version"`
	ModifiedAt time.Time       `json:"modified_at,omitzero"`
	Values     json.RawMessage `json:"values"`
	Error      string          `json:"error,omitempty"`
	Overrides  []Override      `json:"overrides"`
}

// Override is one process's override of a service's config.
type Override struct {
	Process    string          `json:"process"`
	Version    int32           `json:"version"`
	ModifiedAt time.Time       `json:"modified_at,omitzero"`
	Values     json.RawMessage `json:"values"`
	Error      string          `json:"error,omitempty"`
}

// maxRecordSize bounds the data a decoder looks at, as internal/records does.
const maxRecordSize = records.MaxSize

// decode unmarshals a recipe's record; empty data is an error unless
// emptyOK (a record whose fields are all unset).
func decode(what string, data []byte, m proto.Message, emptyOK bool) error {
	switch {
	case len(data) == 0 && !emptyOK:
		return fmt.Errorf("empty data, not a %s", what)
	case len(data) > maxRecordSize:
		return fmt.Errorf("%d bytes of data, not a %s (at most %d)", len(data), what, maxRecordSize)
	}
	if err := proto.Unmarshal(data, m); err != nil {
		return fmt.Errorf("not a %s: %w", what, err)
	}
	return nil
}

func decodeItem(z *znode) (*workqueuev1.Item, error) {
	key, _, ok := parseItem(z.name)
	if !ok {
		return nil, fmt.Errorf("name %q is not an item's (<key>-<10 digits>): takers pass it over", z.name)
	}
	rec := &workqueuev1.Item{}
	if err := decode("recipes.workqueue.v1.Item", z.data, rec, false); err != nil {
		return nil, err
	}
	if rec.GetKey() != key {
		return nil, fmt.Errorf("the Item record names the key %q: takers skip it", rec.GetKey())
	}
	return rec, nil
}

// decodeQueueWaiter decodes a waiter of a queue's line (recipes/workqueue).
func decodeQueueWaiter(data []byte) (*workqueuev1.Waiter, error) {
	rec := &workqueuev1.Waiter{}
	if err := decode("recipes.workqueue.v1.Waiter", data, rec, false); err != nil {
		return nil, err
	}
	return rec, nil
}

func decodeClaim(data []byte) (*workqueuev1.Claim, error) {
	rec := &workqueuev1.Claim{}
	if err := decode("recipes.workqueue.v1.Claim", data, rec, false); err != nil {
		return nil, err
	}
	if rec.GetTaker() == "" {
		return nil, errors.New("a Claim without a taker")
	}
	return rec, nil
}

// decodeRole decodes a spec: empty data is a role without a spec
// (recipes/rolematch/records.go).
func decodeRole(z *znode) (*rolematchv1.Role, error) {
	rec := &rolematchv1.Role{}
	if err := decode("recipes.rolematch.v1.Role", z.data, rec, true); err != nil {
		return nil, err
	}
	return rec, nil
}

// decodeAssignment decodes an assignment; it must name a holder PID
// (rolematch's rule; doctor also checks the names).
func decodeAssignment(z *znode) (*rolematchv1.Assignment, error) {
	rec := &rolematchv1.Assignment{}
	if err := decode("recipes.rolematch.v1.Assignment", z.data, rec, false); err != nil {
		return nil, err
	}
	if rec.GetHolder().GetAddress() == "" || rec.GetHolder().GetId() == "" {
		return nil, errors.New("an Assignment without a holder PID")
	}
	return rec, nil
}

// decodeApplicant decodes an application; it must carry a limit.
func decodeApplicant(z *znode) (*rolematchv1.Applicant, error) {
	rec := &rolematchv1.Applicant{}
	if err := decode("recipes.rolematch.v1.Applicant", z.data, rec, false); err != nil {
		return nil, err
	}
	if rec.GetLimit() == 0 {
		return nil, errors.New("an Applicant without a limit")
	}
	return rec, nil
}

func decodeWaiter(z *znode) (*lockv1.Waiter, error) {
	rec := &lockv1.Waiter{}
	if err := decode("recipes.lock.v1.Waiter", z.data, rec, false); err != nil {
		return nil, err
	}
	return rec, nil
}

func decodeParticipant(z *znode) (*barrierv1.Participant, error) {
	rec := &barrierv1.Participant{}
	if err := decode("recipes.barrier.v1.Participant", z.data, rec, false); err != nil {
		return nil, err
	}
	return rec, nil
}

// decodeReady decodes a barrier's ready znode: without a size it admits
// nobody (recipes/barrier/barrier.go).
func decodeReady(z *znode) (*barrierv1.Ready, error) {
	rec := &barrierv1.Ready{}
	if err := decode("recipes.barrier.v1.Ready", z.data, rec, false); err != nil {
		return nil, fmt.Errorf("%w: admits nobody", err)
	}
	if rec.GetSize() < 1 {
		return nil, errors.New("a Ready record without a size: admits nobody")
	}
	return rec, nil
}

// decodeConfig decodes a config record: no data is the empty object
// (recipes/config). It returns the values as JSON.
func decodeConfig(z *znode) (json.RawMessage, error) {
	rec := &configv1.Record{}
	if err := decode("recipes.config.v1.Record", z.data, rec, true); err != nil {
		return nil, err
	}
	values := rec.GetValues()
	if values == nil {
		values = &structpb.Struct{}
	}
	out, err := protojson.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("values JSON cannot hold: %w", err)
	}
	// protojson's output is not byte-stable; compact it through
	// encoding/json so that -watch compares values, not spacing.
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("values JSON cannot hold: %w", err)
	}
	return json.Marshal(v)
}

func (r *Report) skip(z *znode, err error) {
	r.Unreadable = append(r.Unreadable, Unreadable{z.path, err.Error()})
}

func (r *Report) addActivations(tree *znode) {
	for _, dir := range tree.child(activationsDir).childList() {
		k := KindActivations{Kind: dir.name, Activations: []Activation{}}
		for _, z := range dir.children {
			rec, err := records.Activation(z.data)
			if err != nil {
				r.skip(z, err)
				continue
			}
			k.Activations = append(k.Activations, Activation{
				Identity: z.name, PID: pidOf(rec.GetPid()), MemberID: rec.GetMemberId(), ActivatedAt: timeOf(rec.GetActivatedAt()),
				Epoch: z.stat.Czxid, Session: session(z.stat.EphemeralOwner),
			})
		}
		r.Activations = append(r.Activations, k)
	}
}

// addQueues reads the work queues, and cmd/boss's jobs from the queue
// "jobs".
func (r *Report) addQueues(tree *znode) {
	for _, dir := range tree.child(queuesDir).childList() {
		q := WorkQueue{Name: dir.name, Items: []Item{}}
		for _, z := range dir.child(waitersDir).childList() {
			if z.ephemeral() {
				q.Waiting++
			}
		}
		claims := dir.child(claimsDir)
		for _, z := range itemQueue(dir.child(itemsDir)) {
			rec, err := decodeItem(z)
			if err != nil {
				r.skip(z, err)
				continue
			}
			_, seq, _ := parseItem(z.name)
			it := Item{
				ID: z.name, Key: rec.GetKey(), Sequence: seq, Producer: rec.GetProducer(), PutAt: timeOf(rec.GetPutAt()),
				Attempts: int(rec.GetAttempts()), PayloadSize: len(rec.GetPayload()),
			}
			if c := claims.child(z.name); c != nil && c.ephemeral() {
				it.Claim = &Claim{Session: session(c.stat.EphemeralOwner)}
				if rec, err := decodeClaim(c.data); err != nil {
					it.Claim.Error = err.Error()
				} else {
					it.Claim.Taker, it.Claim.TakenAt = rec.GetTaker(), timeOf(rec.GetTakenAt())
				}
				q.Held++
			} else if c != nil {
				// A persistent claim holds the item all the same (forever).
				it.Claim = &Claim{Session: session(0), Error: "a persistent claim: it holds the item forever (see zkactor doctor)"}
				q.Held++
			}
			q.Items = append(q.Items, it)
			if dir.name == jobsQueue {
				r.addJob(z, it, rec)
			}
		}
		r.Queues = append(r.Queues, q)
	}
}

// addJob adds a job of cmd/boss: an item of the queue "jobs" whose key is
// job-<token> and whose payload is a boss.v1.Job with a text.
func (r *Report) addJob(z *znode, it Item, rec *workqueuev1.Item) {
	job, err := decodeJob(it.Key, rec.GetPayload())
	if err != nil {
		r.skip(z, fmt.Errorf("not a cmd/boss job: %w", err))
		return
	}
	r.Jobs = append(r.Jobs, Job{
		ID: it.Key, Text: job.GetText(), SubmittedAt: it.PutAt,
		Item: it.ID, Key: it.Key, Attempts: it.Attempts, Producer: it.Producer, PutAt: it.PutAt, Claim: it.Claim,
	})
}

// itemQueue returns the children of items/, oldest first (those that are
// not items' first: decodeItem reports them).
func itemQueue(items *znode) []*znode {
	q := append([]*znode(nil), items.childList()...)
	sort.SliceStable(q, func(i, j int) bool {
		_, a, _ := parseItem(q[i].name)
		_, b, _ := parseItem(q[j].name)
		return a < b
	})
	return q
}

func (r *Report) addRoles(tree *znode) {
	for _, dir := range tree.child(rolesDir).childList() {
		set := RoleSet{Name: dir.name, Roles: []Role{}, Applicants: []Applicant{}}
		roles := map[string]*Role{}
		role := func(name string) *Role {
			if roles[name] == nil {
				roles[name] = &Role{Name: name}
			}
			return roles[name]
		}
		for _, z := range dir.child(specsDir).childList() {
			rec, err := decodeRole(z)
			if err != nil {
				r.skip(z, err)
				continue
			}
			ro := role(z.name)
			ro.Posted, ro.PostedAt = true, timeOf(rec.GetPostedAt())
			switch s := rec.GetSpec().(type) {
			case *rolematchv1.Role_Data:
				ro.Spec, ro.SpecSize = "bytes", len(s.Data)
			case *rolematchv1.Role_Message:
				ro.Spec, ro.SpecSize = s.Message.GetTypeUrl(), len(s.Message.GetValue())
			}
		}
		held := map[string]int{}
		for _, z := range dir.child(assignmentsDir).childList() {
			h := &RoleHolder{Epoch: z.stat.Czxid, Session: session(z.stat.EphemeralOwner)}
			if rec, err := decodeAssignment(z); err != nil {
				h.Error = err.Error()
				r.skip(z, err)
			} else {
				pid := pidOf(rec.GetHolder())
				h.PID, h.NodeID, h.Applicant, h.Since = &pid, rec.GetNodeId(), rec.GetApplicant(), timeOf(rec.GetSince())
				held[rec.GetApplicant()]++
			}
			role(z.name).Holder = h
		}
		for _, z := range dir.child(applicantsDir).childList() {
			rec, err := decodeApplicant(z)
			if err != nil {
				r.skip(z, err)
				continue
			}
			limit := int(rec.GetLimit())
			set.Applicants = append(set.Applicants, Applicant{
				ID: z.name, NodeID: rec.GetNodeId(), Limit: limit, Held: held[z.name], Room: limit - held[z.name],
				Since: timeOf(rec.GetSince()), Session: session(z.stat.EphemeralOwner),
			})
		}
		for _, ro := range roles {
			set.Roles = append(set.Roles, *ro)
		}
		sort.Slice(set.Roles, func(i, j int) bool { return set.Roles[i].Name < set.Roles[j].Name })
		r.Roles = append(r.Roles, set)
	}
}

// protectedQueue returns the children of dir that take part in a lock's
// or a barrier's queue: ephemeral, named _c_<guid><mark><seq>, by sequence.
func protectedQueue(dir *znode, mark string) []*znode {
	var q []*znode
	for _, z := range dir.children {
		if _, ok := parseProtected(z.name, mark); ok && z.ephemeral() {
			q = append(q, z)
		}
	}
	sort.SliceStable(q, func(i, j int) bool {
		a, _ := parseProtected(q[i].name, mark)
		b, _ := parseProtected(q[j].name, mark)
		return a < b
	})
	return q
}

func (r *Report) addLocks(tree *znode) {
	for _, dir := range tree.child(locksDir).childList() {
		l := Lock{Name: dir.name, Queue: []Waiter{}}
		for i, z := range protectedQueue(dir, waiterMark) {
			seq, _ := parseProtected(z.name, waiterMark)
			w := Waiter{Position: i, Znode: z.name, Sequence: seq, Token: z.stat.Czxid, Session: session(z.stat.EphemeralOwner)}
			if rec, err := decodeWaiter(z); err != nil {
				w.Error = err.Error()
				r.skip(z, err)
			} else {
				if rec.GetHolder() != nil {
					pid := pidOf(rec.GetHolder())
					w.PID = &pid
				}
				w.NodeID, w.Since = rec.GetNodeId(), timeOf(rec.GetSince())
			}
			l.Queue = append(l.Queue, w)
		}
		if len(l.Queue) > 0 {
			head := l.Queue[0]
			l.Holder, l.Token = &head, head.Token
		}
		r.Locks = append(r.Locks, l)
	}
}

func (r *Report) addBarriers(tree *znode) {
	for _, dir := range tree.child(barriersDir).childList() {
		b := Barrier{Name: dir.name, Participants: []Participant{}}
		var ready *Ready
		if z := dir.child(readyName); z != nil {
			ready = &Ready{}
			if rec, err := decodeReady(z); err != nil {
				ready.Error = err.Error()
				r.skip(z, err)
			} else {
				ready.Size, ready.LastSequence, ready.Since = int(rec.GetSize()), rec.GetLastSequence(), timeOf(rec.GetSince())
			}
		}
		b.Ready = ready
		for i, z := range protectedQueue(dir, participantMark) {
			seq, _ := parseProtected(z.name, participantMark)
			p := Participant{Position: i, Znode: z.name, Sequence: seq, Session: session(z.stat.EphemeralOwner)}
			p.Admitted = ready != nil && ready.Error == "" && seq <= ready.LastSequence
			if rec, err := decodeParticipant(z); err != nil {
				p.Error = err.Error()
				r.skip(z, err)
			} else {
				p.NodeID, p.Since = rec.GetNodeId(), timeOf(rec.GetSince())
			}
			b.Participants = append(b.Participants, p)
		}
		r.Barriers = append(r.Barriers, b)
	}
}

func (r *Report) addConfigs(tree *znode) {
	for _, z := range tree.child(configDir).childList() {
		c := Config{Service: z.name, Version: z.stat.Version, ModifiedAt: mtime(z), Overrides: []Override{}}
		if values, err := decodeConfig(z); err != nil {
			c.Error = err.Error()
			r.skip(z, err)
		} else {
			c.Values = values
		}
		for _, o := range z.child(overridesDir).childList() {
			ov := Override{Process: o.name, Version: o.stat.Version, ModifiedAt: mtime(o)}
			if values, err := decodeConfig(o); err != nil {
				ov.Error = err.Error()
				r.skip(o, err)
			} else {
				ov.Values = values
			}
			c.Overrides = append(c.Overrides, ov)
		}
		r.Configs = append(r.Configs, c)
	}
}

// mtime is when a znode's data was last written, by the server's clock.
func mtime(z *znode) time.Time {
	if z.stat.Mtime == 0 {
		return time.Time{}
	}
	return time.UnixMilli(z.stat.Mtime).UTC()
}

// writeRecipes writes the sections of package provider and the recipes.
func writeRecipes(p func(string, ...any), r *Report) {
	p("\nACTIVATIONS (%d)", len(r.Activations))
	for _, k := range r.Activations {
		p("  %s (%d)", k.Kind, len(k.Activations))
		if len(k.Activations) > 0 {
			p("    IDENTITY\tPID\tMEMBER\tACTIVATED\tEPOCH\tSESSION")
		}
		for _, a := range k.Activations {
			p("    %s\t%s\t%s\t%s\t%d\t%s", a.Identity, a.PID, orDash(a.MemberID), formatTime(a.ActivatedAt), a.Epoch, a.Session)
		}
	}

	p("\nQUEUES (%d)", len(r.Queues))
	for _, q := range r.Queues {
		p("  %s: %d items, %d held, %d takes waiting", q.Name, len(q.Items), q.Held, q.Waiting)
		if len(q.Items) > 0 {
			p("    ID\tPRODUCER\tPUT\tATTEMPTS\tBYTES\tCLAIMED BY")
		}
		for _, it := range q.Items {
			p("    %s\t%s\t%s\t%d\t%d\t%s", it.ID, orDash(it.Producer), formatTime(it.PutAt), it.Attempts, it.PayloadSize, formatClaim(it.Claim))
		}
	}

	p("\nROLES (%d)", len(r.Roles))
	for _, set := range r.Roles {
		held := 0
		for _, ro := range set.Roles {
			if ro.Holder != nil {
				held++
			}
		}
		p("  %s: %d roles, %d held, %d applicants", set.Name, len(set.Roles), held, len(set.Applicants))
		if len(set.Roles) > 0 {
			p("    ROLE\tSPEC\tHOLDER\tNODE\tAPPLICANT\tEPOCH\tSESSION")
		}
		for _, ro := range set.Roles {
			spec := "(no spec)"
			switch {
			case !ro.Posted:
				spec = "(not posted)"
			case ro.Spec != "":
				spec = fmt.Sprintf("%s (%d bytes)", ro.Spec, ro.SpecSize)
			}
			h := ro.Holder
			switch {
			case h == nil:
				p("    %s\t%s\t(free)\t-\t-\t-\t-", ro.Name, spec)
			case h.PID == nil:
				p("    %s\t%s\t(unreadable: %s)\t-\t-\t%d\t%s", ro.Name, spec, h.Error, h.Epoch, h.Session)
			default:
				p("    %s\t%s\t%s\t%s\t%s\t%d\t%s", ro.Name, spec, *h.PID, orDash(h.NodeID), orDash(h.Applicant), h.Epoch, h.Session)
			}
		}
		if len(set.Applicants) > 0 {
			p("    applicants:") // no tab: the columns below are their own
			p("    ID\tNODE\tLIMIT\tHELD\tROOM\tSESSION")
		}
		for _, a := range set.Applicants {
			p("    %s\t%s\t%d\t%d\t%d\t%s", a.ID, orDash(a.NodeID), a.Limit, a.Held, a.Room, a.Session)
		}
	}

	p("\nLOCKS (%d)", len(r.Locks))
	for _, l := range r.Locks {
		if l.Holder == nil {
			p("  %s: free", l.Name)
			continue
		}
		p("  %s: held by %s on %s for %s, token %d, %d waiting", l.Name, l.Holder.Znode, orDash(l.Holder.NodeID), formatWaiterPID(*l.Holder), l.Token, len(l.Queue)-1)
		p("    #\tSEQUENCE\tNODE\tFOR\tSESSION")
		for _, w := range l.Queue {
			p("    %d\t%010d\t%s\t%s\t%s", w.Position, w.Sequence, orDash(w.NodeID), formatWaiterPID(w), w.Session)
		}
	}

	p("\nBARRIERS (%d)", len(r.Barriers))
	for _, b := range r.Barriers {
		switch {
		case b.Ready == nil:
			p("  %s: %d participants, not ready", b.Name, len(b.Participants))
		case b.Ready.Error != "":
			p("  %s: %d participants, ready unreadable (%s)", b.Name, len(b.Participants), b.Ready.Error)
		default:
			p("  %s: %d participants, ready: size %d, admits up to %010d, since %s", b.Name, len(b.Participants),
				b.Ready.Size, b.Ready.LastSequence, formatTime(b.Ready.Since))
		}
		if len(b.Participants) > 0 {
			p("    #\tSEQUENCE\tNODE\tADMITTED\tSESSION")
		}
		for _, pt := range b.Participants {
			node := orDash(pt.NodeID)
			if pt.Error != "" {
				node = "(unreadable: " + pt.Error + ")"
			}
			p("    %d\t%010d\t%s\t%t\t%s", pt.Position, pt.Sequence, node, pt.Admitted, pt.Session)
		}
	}

	p("\nCONFIGS (%d)", len(r.Configs))
	for _, c := range r.Configs {
		p("  %s: version %d, modified %s: %s", c.Service, c.Version, formatTime(c.ModifiedAt), formatValues(c.Values, c.Error))
		for _, o := range c.Overrides {
			p("    override %s: version %d, modified %s: %s", o.Process, o.Version, formatTime(o.ModifiedAt), formatValues(o.Values, o.Error))
		}
	}
}

func formatClaim(c *Claim) string {
	switch {
	case c == nil:
		return "-"
	case c.Taker == "":
		return c.Session
	default:
		return c.Taker + " " + c.Session
	}
}

func formatWaiterPID(w Waiter) string {
	switch {
	case w.Error != "":
		return "(unreadable: " + w.Error + ")"
	case w.PID == nil:
		return "-"
	default:
		return w.PID.String()
	}
}

func formatValues(values json.RawMessage, err string) string {
	if err != "" {
		return "(unreadable: " + err + ")"
	}
	return excerpt(string(values))
}
