package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	zka "github.com/zkactor/zkactor/actor"
	configv1 "github.com/zkactor/zkactor/proto/recipes/config/v1"
	"github.com/zkactor/zkactor/recipes/config"
)

// The distributed config: with Config.Config, every node process
// subscribes to the config of the service "chaos" (package recipes/config)
// as the process named after its slot ("n0", "n1", ...: an override
// outlives its process, so a slot's next incarnation inherits it). The
// workload tells random nodes to write, always compare-and-set at the
// version the node's subscription holds: the service's record ("cset") or
// the node's own override ("cover"). Every write carries its write id in
// its values, so a received config names the writes it merges:
//
//	record <w>:    {"rec": w, "shared": w, "del": w, "obj": {"a": w, "b": w}}
//	override <o>:  {"ovr": o, "shared": o, "del": null, "obj": {"b": o}}
//
// A node reports
//
//	cwrite rec|ovr <id> <expected>                  it is about to write (the write may land even if it dies)
//	cset|cover <id> ok <version> | conflict <current> | err <error>   the write returned
//	cgot <revision> <rec exists> <rec version> <rec json> <ovr exists> <ovr version> <ovr json> <merged json> <error>
//	                                                its subscriber received a Config
//
// and the command "cheld" answers what its subscriber holds. Three
// invariants judge them (issue 11):
//
//	config-stream: each subscription's revisions strictly grow; every
//	    config it receives is a merge that existed: each part is exactly
//	    the values of a write that was issued (its own process's override,
//	    not another's), the merged values are the JSON merge patch of the
//	    two (computed here, not by the recipe), and no message carries an
//	    error (nobody writes garbage there).
//	config-writes: compare-and-set: one version of a znode is one write
//	    (every acknowledged write and every received part agree on which
//	    write a version holds, so two writers never both succeed at one
//	    version), and no acknowledged write is lost: after the heal the
//	    znode is at its version or later.
//	live-config: within session timeout + 5 s of the heal, every live
//	    subscriber holds the znodes' current versions and writes.
const (
	childConfigEnv = "ZKACTOR_CHAOS_CONFIG" // "1": the node process subscribes and writes configs
	configService  = "chaos"
)

// recValues and ovrValues are the values written by a record write and by
// an override write of id w.
func recValues(w string) map[string]any {
	return map[string]any{"rec": w, "shared": w, "del": w, "obj": map[string]any{"a": w, "b": w}}
}

func ovrValues(o string) map[string]any {
	return map[string]any{"ovr": o, "shared": o, "del": nil, "obj": map[string]any{"b": o}}
}

// mergedValues is what a process whose parts are the writes w and o (""
// for an absent part) must be sent: the override applied as a merge patch,
// by hand.
func mergedValues(w, o string) map[string]any {
	m := map[string]any{}
	if w != "" {
		m = recValues(w)
	}
	if o != "" {
		m["ovr"], m["shared"] = o, o
		delete(m, "del")
		obj, _ := m["obj"].(map[string]any)
		if obj == nil {
			obj = map[string]any{}
		}
		obj["b"] = o
		m["obj"] = obj
	}
	return m
}

// canonical renders values as compact JSON with sorted keys.
func canonical(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// slotOf is the process name of a node label: "n1.3" -> "n1".
func slotOf(label string) string {
	if i := strings.IndexByte(label, '.'); i >= 0 {
		return label[:i]
	}
	return label
}

// configPart is a node process's side.
type configPart struct {
	st      *config.Store
	label   string
	process string
	out     *emitter

	mu     sync.Mutex
	held   *configv1.Config
	writes int
}

func startConfigPart(node *zka.Node, root, label string, log *slog.Logger, out *emitter) (*configPart, error) {
	st, err := config.NewStore(node.System(), node.Session(), config.Options{Root: root, Logger: log.With("part", "config")})
	if err != nil {
		return nil, err
	}
	cp := &configPart{st: st, label: label, process: slotOf(label), out: out}
	pid := node.System().Root.Spawn(actor.PropsFromFunc(cp.receive))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := st.Subscribe(ctx, configService, cp.process, pid); err != nil {
		cctx, ccancel := context.WithTimeout(context.Background(), commandWait)
		defer ccancel()
		_ = st.Close(cctx)
		return nil, err
	}
	return cp, nil
}

func (cp *configPart) receive(c actor.Context) {
	m, ok := c.Message().(*configv1.Config)
	if !ok {
		return
	}
	cp.mu.Lock()
	cp.held = m
	cp.mu.Unlock()
	rec, ovr := m.GetServiceRecord(), m.GetOverride()
	cp.out.emit("cgot", m.Revision,
		rec.GetExists(), rec.GetVersion(), canonical(rec.GetValues().AsMap()),
		ovr.GetExists(), ovr.GetVersion(), canonical(ovr.GetValues().AsMap()),
		canonical(m.GetValues().AsMap()), m.Error)
}

// expected is the version a write of a part expects: the one held.
func expected(p *configv1.Part) int32 {
	if !p.GetExists() {
		return config.Absent
	}
	return p.GetVersion()
}

// write is the "cset" (override false) and "cover" (true) commands.
func (cp *configPart) write(override bool) (string, error) {
	if cp == nil {
		return "", fmt.Errorf("this node has no config part")
	}
	cp.mu.Lock()
	cp.writes++
	held := cp.held
	n := cp.writes
	cp.mu.Unlock()
	kind, verb, values := "rec", "cset", recValues
	part := held.GetServiceRecord()
	if override {
		kind, verb, values, part = "ovr", "cover", ovrValues, held.GetOverride()
	}
	id := fmt.Sprintf("%s-%s%d", cp.label, kind[:1], n)
	v, err := structpb.NewStruct(values(id))
	if err != nil {
		return "", err
	}
	want := expected(part)
	cp.out.emit("cwrite", kind, id, want)
	ctx, cancel := context.WithTimeout(context.Background(), commandWait)
	defer cancel()
	var version int32
	if override {
		version, err = cp.st.SetOverride(ctx, configService, cp.process, v, want)
	} else {
		version, err = cp.st.Set(ctx, configService, v, want)
	}
	var conflict *config.ConflictError
	switch {
	case err == nil:
		cp.out.emit(verb, id, "ok", version)
		return strconv.Itoa(int(version)), nil
	case errors.As(err, &conflict):
		cp.out.emit(verb, id, "conflict", conflict.Current)
	default:
		cp.out.emit(verb, id, "err", err)
	}
	return "", err
}

// heldString is the "cheld" command: what the subscriber holds.
func (cp *configPart) heldString() (string, error) {
	if cp == nil {
		return "", fmt.Errorf("this node has no config part")
	}
	cp.mu.Lock()
	m := cp.held
	cp.mu.Unlock()
	if m == nil {
		return "", fmt.Errorf("no config received yet")
	}
	return fmt.Sprintf("%d %s %s", m.Revision, partString(m.GetServiceRecord(), "rec"), partString(m.GetOverride(), "ovr")), nil
}

// partString is "<version> <write id>" of a part, "-1 -" when absent.
func partString(p *configv1.Part, key string) string {
	if !p.GetExists() {
		return "-1 -"
	}
	id, _ := p.GetValues().AsMap()[key].(string)
	if id == "" {
		id = "?"
	}
	return fmt.Sprintf("%d %s", p.GetVersion(), id)
}

func (cp *configPart) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = cp.st.Close(ctx)
}

// configHistory is the config's part of the derived state.
type configHistory struct {
	issued  map[string]bool             // write ids of writes issued (cwrite)
	acked   map[string]int32            // write id -> version its write returned
	owner   map[string]map[int32]string // znode ("rec", or an override's process) -> version -> write id
	clash   []string                    // two writes for one version, not yet judged
	got     []Event                     // cgot events not yet judged
	lastRev map[string]int64            // subscriber label -> revision of its last config
	ackedN  int
	gotN    int
}

func newConfigHistory() *configHistory {
	return &configHistory{issued: map[string]bool{}, acked: map[string]int32{}, owner: map[string]map[int32]string{}, lastRev: map[string]int64{}}
}

// znodeOf is the znode a write id's write goes to: "rec", or the process
// of an override ("n1").
func znodeOf(id string) string {
	i := strings.LastIndexByte(id, '-')
	if i < 0 || i+1 >= len(id) || id[i+1] == 'r' {
		return "rec"
	}
	return slotOf(id[:i])
}

// own notes that version v of znode z holds the write id, and a clash if
// another write held it.
func (h *configHistory) own(z string, v int32, id string, at int64, src string) {
	if h.owner[z] == nil {
		h.owner[z] = map[int32]string{}
	}
	switch prev := h.owner[z][v]; {
	case prev == "":
		h.owner[z][v] = id
	case prev != id:
		h.clash = append(h.clash, fmt.Sprintf("%d|%s|%d|%s|%s|%s", at, z, v, prev, id, src))
	}
}

func (h *configHistory) apply(e Event) {
	switch e.Kind {
	case "cwrite": // cwrite rec|ovr <id> <expected>
		h.issued[e.Arg(1)] = true
	case "cset", "cover": // <id> ok <version>
		if e.Arg(1) == "ok" {
			id, v := e.Arg(0), int32(e.Int(2))
			h.acked[id] = v
			h.ackedN++
			h.own(znodeOf(id), v, id, e.T, e.Src)
		}
	case "cgot":
		h.got = append(h.got, e)
		h.gotN++
		if e.Arg(1) == "true" {
			if id := jsonField(e.Arg(3), "rec"); id != "" {
				h.own("rec", int32(e.Int(2)), id, e.T, e.Src)
			}
		}
		if e.Arg(4) == "true" {
			if id := jsonField(e.Arg(6), "ovr"); id != "" {
				h.own(slotOf(e.Src), int32(e.Int(5)), id, e.T, e.Src)
			}
		}
	}
}

// jsonField is the string field key of a JSON object, "" if none.
func jsonField(doc, key string) string {
	var m map[string]any
	if json.Unmarshal([]byte(doc), &m) != nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}

// configStream: every received config is sound.
type configStream struct{}

func (*configStream) Name() string { return "config-stream" }

// CheckStopped judges the configs received since the last trial's check.
func (inv *configStream) CheckStopped(tr *Trial) []Violation { return inv.Check(tr) }

func (inv *configStream) Check(tr *Trial) []Violation {
	if !tr.r.cfg.Config {
		return nil
	}
	var fs []finding
	tr.r.withState(func(s *state) {
		h := s.cfg
		for _, e := range h.got {
			bad := func(format string, args ...any) {
				fs = append(fs, finding{e.T, fmt.Sprintf("%s's subscriber received revision %d: ", e.Src, e.Int(0)) + fmt.Sprintf(format, args...),
					fmt.Sprintf("%s|%d", e.Src, e.T), []string{e.Src}})
			}
			rev := e.Int(0)
			if last, ok := h.lastRev[e.Src]; ok && rev <= last {
				bad("after revision %d", last)
			}
			h.lastRev[e.Src] = rev
			if msg := e.Rest(8); msg != "-" && msg != "" {
				bad("an error: %s", msg)
				continue
			}
			w, o := "", ""
			if e.Arg(1) == "true" {
				w = jsonField(e.Arg(3), "rec")
				switch {
				case !h.issued[w]:
					bad("a record %s that no write wrote", e.Arg(3))
					continue
				case e.Arg(3) != canonical(recValues(w)):
					bad("record %s, but write %s wrote %s", e.Arg(3), w, canonical(recValues(w)))
					continue
				}
			} else if e.Arg(3) != "{}" {
				bad("an absent record with values %s", e.Arg(3))
				continue
			}
			if e.Arg(4) == "true" {
				o = jsonField(e.Arg(6), "ovr")
				switch {
				case !h.issued[o]:
					bad("an override %s that no write wrote", e.Arg(6))
					continue
				case znodeOf(o) != slotOf(e.Src):
					bad("the override of another process: %s", e.Arg(6))
					continue
				case e.Arg(6) != canonical(ovrValues(o)):
					bad("override %s, but write %s wrote %s", e.Arg(6), o, canonical(ovrValues(o)))
					continue
				}
			} else if e.Arg(6) != "{}" {
				bad("an absent override with values %s", e.Arg(6))
				continue
			}
			if want := canonical(mergedValues(w, o)); e.Arg(7) != want {
				bad("merged config %s, want %s (record %q, override %q)", e.Arg(7), want, w, o)
			}
		}
		h.got = nil
	})
	return tr.findings(inv.Name(), fs)
}

// configWrites: compare-and-set holds and no acknowledged write is lost.
type configWrites struct{}

func (*configWrites) Name() string { return "config-writes" }

// CheckStopped judges the writes since the last trial's check.
func (inv *configWrites) CheckStopped(tr *Trial) []Violation { return inv.Check(tr) }

func (inv *configWrites) Check(tr *Trial) []Violation {
	if !tr.r.cfg.Config {
		return nil
	}
	var fs []finding
	acked := map[string]int32{}
	tr.r.withState(func(s *state) {
		for _, c := range s.cfg.clash {
			f := strings.SplitN(c, "|", 6)
			at, _ := strconv.ParseInt(f[0], 10, 64)
			fs = append(fs, finding{at, fmt.Sprintf("version %s of the config znode %s held write %s and write %s (seen by %s)", f[2], f[1], f[3], f[4], f[5]),
				"clash|" + c, []string{f[3], f[4]}})
		}
		s.cfg.clash = nil
		for id, v := range s.cfg.acked {
			acked[id] = v
		}
	})
	vs := tr.findings(inv.Name(), fs)
	current, err := tr.r.readConfigs()
	if err != nil {
		return append(vs, tr.Violation(inv.Name(), Now(), "cannot read the configs: "+err.Error()).Key(fmt.Sprintf("%s/%d", tr.class.Name(), tr.Index)))
	}
	ids := slices.Sorted(mapKeys(acked))
	for _, id := range ids {
		v := acked[id]
		cur, ok := current[znodeOf(id)]
		switch {
		case !ok:
			vs = append(vs, tr.Violation(inv.Name(), Now(), fmt.Sprintf("write %s was acknowledged at version %d of %s, which does not exist", id, v, znodeOf(id)), id).
				Key("lost|"+id))
		case cur.version < v:
			vs = append(vs, tr.Violation(inv.Name(), Now(), fmt.Sprintf("write %s was acknowledged at version %d of %s, which is now at %s", id, v, znodeOf(id), cur), id).
				Key("lost|"+id))
		case cur.version == v && cur.id != id:
			vs = append(vs, tr.Violation(inv.Name(), Now(), fmt.Sprintf("write %s was acknowledged at version %d of %s, which holds %s at that version", id, v, znodeOf(id), cur), id).
				Key("lost|"+id))
		}
	}
	return vs
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// znodeState is a config znode as read: its version and the write id its
// values carry.
type znodeState struct {
	version int32
	id      string
}

func (z znodeState) String() string { return fmt.Sprintf("version %d (write %s)", z.version, z.id) }

// readConfigs reads the service's record ("rec") and every override (by
// process) with the foreign client.
func (r *Run) readConfigs() (map[string]znodeState, error) {
	out := map[string]znodeState{}
	dir := r.root + "/config/" + configService
	read := func(p, key, name string) error {
		var data []byte
		var st *zk.Stat
		err := r.foreignDo("get "+p, func(c *zk.Conn) error {
			var err error
			data, st, err = c.Get(p)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		var rec configv1.Record
		if err := proto.Unmarshal(data, &rec); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		id, _ := rec.GetValues().AsMap()[key].(string)
		out[name] = znodeState{version: st.Version, id: id}
		return nil
	}
	if err := read(dir, "rec", "rec"); err != nil {
		return nil, err
	}
	var procs []string
	err := r.foreignDo("children "+dir+"/overrides", func(c *zk.Conn) error {
		var err error
		procs, _, err = c.Children(dir + "/overrides")
		return err
	})
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return nil, err
	}
	for _, p := range procs {
		if err := read(dir+"/overrides/"+p, "ovr", p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// liveConfig: after the heal, every live subscriber holds the current
// record and its current override.
type liveConfig struct{ persisting }

func (*liveConfig) Name() string  { return "live-config" }
func (*liveConfig) Settles() bool { return true }

func (inv *liveConfig) Check(tr *Trial) []Violation {
	if !tr.r.cfg.Config {
		return nil
	}
	deadline := tr.healedAt + int64(tr.r.cfg.SessionTimeout+5*time.Second)
	var probs []problem
	ok, why := tr.Await(deadline, func() (bool, string) {
		probs = probs[:0]
		current, err := tr.r.readConfigs()
		if err != nil {
			return false, "cannot read the configs: " + err.Error()
		}
		type query struct {
			n  *nodeProc
			ch <-chan Event
		}
		var qs []query
		for _, n := range tr.r.liveNodes() {
			qs = append(qs, query{n, n.send("cheld")})
		}
		for _, q := range qs {
			var e Event
			select {
			case e = <-q.ch:
			case <-time.After(2 * commandWait):
				return false, fmt.Sprintf("%s: cheld: no answer", q.n.label)
			}
			if e.Arg(1) != "ok" {
				probs = append(probs, problem{key: "err|" + q.n.label, what: fmt.Sprintf("%s holds no config: %s", q.n.label, e.Rest(2))})
				continue
			}
			want := func(z string) string {
				if c, ok := current[z]; ok {
					return fmt.Sprintf("%d %s", c.version, c.id)
				}
				return "-1 -"
			}
			got := strings.Fields(e.Rest(2)) // <revision> <rec version> <rec id> <ovr version> <ovr id>
			if len(got) != 5 {
				probs = append(probs, problem{key: "answer|" + q.n.label, what: fmt.Sprintf("%s: cheld answered %q", q.n.label, e.Rest(2))})
				continue
			}
			if w := want("rec"); got[1]+" "+got[2] != w {
				probs = append(probs, problem{key: "rec|" + q.n.label + "|" + w, focus: q.n.label,
					what: fmt.Sprintf("%s holds the record at %s %s, ZooKeeper at %s", q.n.label, got[1], got[2], w)})
			}
			if w := want(slotOf(q.n.label)); got[3]+" "+got[4] != w {
				probs = append(probs, problem{key: "ovr|" + q.n.label + "|" + w, focus: q.n.label,
					what: fmt.Sprintf("%s holds its override at %s %s, ZooKeeper at %s", q.n.label, got[3], got[4], w)})
			}
		}
		slices.SortFunc(probs, func(a, b problem) int { return strings.Compare(a.what, b.what) })
		return len(probs) == 0, ""
	})
	if ok {
		inv.clear()
		return nil
	}
	if why != "" {
		return []Violation{tr.Violation(inv.Name(), deadline, why).Key(fmt.Sprintf("%s/%d", tr.class.Name(), tr.Index))}
	}
	return inv.report(tr, inv.Name(), deadline, probs)
}
