package chaos

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/zkactor/zkactor/cluster"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
	zkactorv1 "github.com/zkactor/zkactor/proto/zkactor/v1"
)

const (
	// tickInterval is how often a running global reports that it runs
	// ("gtick"), which is what shows a global acting after a pause.
	tickInterval = 100 * time.Millisecond
	// redeliverAfter is how long the boss waits for a Done before it
	// delegates a job again, to the next worker.
	redeliverAfter = 2 * time.Second
	// storeWait bounds one asynchronous ZooKeeper request of the boss; it
	// is shorter than the requestor's wait (submitWait), so a requestor
	// hears Rejected rather than timing out.
	storeWait  = 2 * time.Second
	submitWait = 3 * time.Second
)

// tick is a running global's timer message.
type tick struct{}

// startTicker sends tick to pid every tickInterval until the returned
// function is called. (protoactor's scheduler races with its own cancel.)
func startTicker(system *actor.ActorSystem, pid *actor.PID) func() {
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(tickInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				system.Root.Send(pid, tick{})
			}
		}
	}()
	return func() { close(stop) }
}

// globalProps is what a node stands for a global name with. The boss also
// runs the jobs.
func globalProps(c *child, name string) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		g := &globalActor{c: c, name: name}
		if name == bossName {
			g.boss = &bossState{jobs: map[string]*bossJob{}, doneEarly: map[string]bool{}}
		}
		return g
	})
}

// globalActor reports its term: "gstart" when it handles Elected (its
// first message), "gtick" on every tick while it runs, "gstop" when it
// handles Stopping. A message before Elected, or a second Elected, is
// reported as "gbad".
//
// It never waits in Receive: a handler that blocks past the lease would go
// on acting after the term, which no guard can stop (global/doc.go). What
// waits on ZooKeeper runs on a goroutine (async) and comes back through
// ReenterAfter; every write to the job store is fenced with the term's
// candidate znode, so it fails once the term is over in ZooKeeper.
type globalActor struct {
	c         *child
	name      string
	epoch     int64
	candidate string // the term's candidate znode (Elected.Candidate)
	elected   bool
	over      bool               // Stopping handled: continuations are dropped
	term      context.Context    // ends with the term: requests in flight stop
	cancel    context.CancelFunc // ends term
	stop      func()
	boss      *bossState
}

func (g *globalActor) Receive(ctx actor.Context) {
	// When the handler began: a process frozen in the middle of a handler
	// reports it after the thaw, but the guard let the message in before.
	began := Now()
	switch m := ctx.Message().(type) {
	case *actor.Started:
		g.term, g.cancel = context.WithCancel(context.Background())
		return
	case *actor.Stopped, *actor.Restarting:
		return
	case *actor.Stopping:
		g.over = true
		if g.cancel != nil {
			g.cancel()
		}
		if g.stop != nil {
			g.stop()
		}
		if g.elected {
			g.c.out.emit("gstop", g.name, g.epoch)
		}
		return
	case *zkactorv1.Elected:
		if g.elected {
			g.c.out.emit("gbad", g.name, g.epoch, "second Elected, epoch", m.Epoch)
			return
		}
		g.elected, g.epoch, g.candidate = true, m.Epoch, m.Candidate
		g.c.out.emit("gstart", g.name, g.epoch, pidString(ctx.Self()), g.candidate)
		g.stop = startTicker(ctx.ActorSystem(), ctx.Self())
		if g.boss != nil {
			g.list(ctx)
			g.lookUpWorkers(ctx)
		}
		return
	}
	if !g.elected {
		g.c.out.emit("gbad", g.name, 0, fmt.Sprintf("message before Elected: %T", ctx.Message()))
		return
	}
	switch m := ctx.Message().(type) {
	case tick:
		g.c.out.emit("gtick", g.name, g.epoch, began)
		if g.boss != nil {
			if !g.boss.listed && !g.boss.listing {
				g.list(ctx) // the last attempt failed
			}
			g.lookUpWorkers(ctx)
			g.dispatch(ctx, began)
		}
	case *bossv1.Submit:
		if g.boss != nil {
			g.submitted(ctx, m, began)
		}
	case *bossv1.Done:
		if g.boss != nil {
			g.done(ctx, m)
		}
	}
}

// async runs op, which may wait on ZooKeeper, on a goroutine of its own,
// then cont inside the actor through protoactor's ReenterAfter (with the
// message being handled now as the context's message, so cont may
// Respond). op's ctx ends after storeWait or with the term; once the term
// is over (Stopping handled), cont does not run.
//
// A continuation is a system message: the global's lease guard does not
// see it. So cont only updates the boss's memory and answers; it sends no
// work (dispatch runs in the tick handler, which the guard admits), and
// what op wrote to ZooKeeper was fenced with the candidate znode.
func (g *globalActor) async(ctx actor.Context, op func(context.Context) (any, error), cont func(any, error)) {
	type outcome struct {
		res any
		err error
	}
	system := ctx.ActorSystem()
	f := actor.NewFuture(system, storeWait+time.Second) // a backstop: op ends first
	octx, cancel := context.WithTimeout(g.term, storeWait)
	go func() {
		defer cancel()
		res, err := op(octx)
		system.Root.Send(f.PID(), &outcome{res, err})
	}()
	ctx.ReenterAfter(f, func(res any, err error) {
		if g.over {
			return
		}
		if err != nil {
			cont(nil, err)
			return
		}
		o := res.(*outcome)
		cont(o.res, o.err)
	})
}

// errFenced: a fenced write failed because the term's candidate znode is
// gone: the term is over in ZooKeeper.
var errFenced = errors.New("the term is over in ZooKeeper (its candidate znode is gone)")

// fenced runs one write to the job store in a multi with a check of the
// term's candidate znode (any version): the write happens only while the
// candidate znode exists, that is while the term lasts in ZooKeeper. It
// returns the write's own result.
func (g *globalActor) fenced(ctx context.Context, name, p string, idempotent bool, write any) (zk.MultiResponse, error) {
	candidate := g.candidate // set at Elected, before any request
	var res zk.MultiResponse
	err := g.c.node.Session().Do(ctx, cluster.Op{Name: name, Path: p, Idempotent: idempotent}, func(conn *zk.Conn) error {
		var err error
		res, err = fencedWrite(conn, candidate, write)
		return err
	})
	if err != nil {
		// res is not to be read: when ctx ended first, fn may still run.
		return zk.MultiResponse{}, err
	}
	return res, nil
}

// fencedWrite sends write in a multi after a check of candidate, and tells
// the check's failure (errFenced, the write not done) from the write's own
// (its error, such as zk.ErrNoNode).
func fencedWrite(conn *zk.Conn, candidate string, write any) (zk.MultiResponse, error) {
	rs, err := conn.Multi(&zk.CheckVersionRequest{Path: candidate, Version: -1}, write)
	if len(rs) == 2 {
		if rs[0].Error != nil {
			// Not wrapped: the check's ErrNoNode is not the write's.
			return zk.MultiResponse{}, fmt.Errorf("%w: check %s: %v", errFenced, candidate, rs[0].Error)
		}
		if rs[1].Error != nil {
			return zk.MultiResponse{}, rs[1].Error
		}
		return rs[1], nil
	}
	if err == nil {
		err = fmt.Errorf("multi: %d results for 2 operations", len(rs))
	}
	return zk.MultiResponse{}, err
}

// bossState is the boss's memory of the unfinished jobs. The job store in
// ZooKeeper is the truth: a new boss starts from it.
type bossState struct {
	jobs      map[string]*bossJob
	next      int             // round-robin over the workers
	listed    bool            // the store has been read since Elected
	listing   bool            // a read of the store is under way
	doneEarly map[string]bool // jobs done while listing: not to be taken from the listing
	workers   []*actor.PID    // the registered workers, as last looked up
	lookingUp bool            // a lookup of the workers is under way
}

type bossJob struct {
	text     string
	sentAt   time.Time // zero: not delegated yet
	deleting bool      // done: its removal from the store is under way
}

// list reads the job store, asynchronously: the jobs the last boss left.
// A failure is tried again on the next tick: a boss must not go on with an
// empty queue while acknowledged jobs wait in the store.
func (g *globalActor) list(ctx actor.Context) {
	g.boss.listing = true
	dir := g.c.jobPath()
	g.async(ctx, func(octx context.Context) (any, error) {
		var names []string
		err := g.c.jobsDo(octx, "list", dir, func(conn *zk.Conn) error {
			var err error
			names, _, err = conn.Children(dir)
			return err
		})
		if err != nil {
			return nil, err
		}
		jobs := map[string]string{}
		for _, name := range names {
			p := path.Join(dir, name)
			var data []byte
			err := g.c.jobsDo(octx, "get", p, func(conn *zk.Conn) error {
				var err error
				data, _, err = conn.Get(p)
				return err
			})
			if errors.Is(err, zk.ErrNoNode) {
				continue // done and removed meanwhile
			}
			if err != nil {
				return nil, err
			}
			job := &bossv1.Job{}
			if err := proto.Unmarshal(data, job); err != nil {
				g.c.log.Warn("boss: skipping job", "job", name, "err", err)
				continue
			}
			jobs[name] = job.Text
		}
		return jobs, nil
	}, func(res any, err error) {
		g.boss.listing = false
		if err != nil {
			g.c.out.emit("bosserr", g.epoch, "list jobs:", err)
			return
		}
		g.boss.listed = true
		for id, text := range res.(map[string]string) {
			if g.boss.jobs[id] == nil && !g.boss.doneEarly[id] {
				g.boss.jobs[id] = &bossJob{text: text}
			}
		}
		clear(g.boss.doneEarly)
		g.c.out.emit("bosslist", g.epoch, len(g.boss.jobs))
	})
}

// lookUpWorkers refreshes the boss's list of workers, asynchronously
// (GetCapable reads the registry's cache, but a miss waits on ZooKeeper).
func (g *globalActor) lookUpWorkers(ctx actor.Context) {
	if g.boss.lookingUp {
		return
	}
	g.boss.lookingUp = true
	g.async(ctx, func(octx context.Context) (any, error) {
		return g.c.node.GetCapable(octx, workerService)
	}, func(res any, err error) {
		g.boss.lookingUp = false
		if err == nil {
			g.boss.workers = res.([]*actor.PID)
		}
	})
}

// submitted records a job in the store, fenced with the term's candidate
// znode, and only then answers Accepted: an acknowledged job is in the
// store, written while the term lasted, so every later boss reads it.
func (g *globalActor) submitted(ctx actor.Context, m *bossv1.Submit, began int64) {
	data, _ := proto.Marshal(&bossv1.Job{Text: m.Text})
	prefix := path.Join(g.c.jobPath(), "job-")
	acl := zk.WorldACL(zk.PermAll)
	g.async(ctx, func(octx context.Context) (any, error) {
		res, err := g.fenced(octx, "create", prefix, false,
			&zk.CreateRequest{Path: prefix, Data: data, Acl: acl, Flags: zk.FlagSequence})
		if err != nil {
			return nil, err
		}
		return res.String, nil
	}, func(res any, err error) {
		if err != nil {
			ctx.Respond(&bossv1.Rejected{Reason: err.Error()})
			return
		}
		id := path.Base(res.(string))
		if g.boss.jobs[id] == nil {
			g.boss.jobs[id] = &bossJob{text: m.Text}
		}
		// began: the Submit handler, which the guard admitted, began then.
		g.c.out.emit("jobstored", id, g.epoch, began)
		ctx.Respond(&bossv1.Accepted{JobId: id})
	})
}

// done removes a finished job from the store, fenced with the term's
// candidate znode. If that fails the job stays known and is delegated
// again; a later boss does it again if this one's term is over.
func (g *globalActor) done(ctx actor.Context, m *bossv1.Done) {
	if g.boss.listing {
		g.boss.doneEarly[m.JobId] = true
	}
	j := g.boss.jobs[m.JobId]
	if j != nil {
		if j.deleting {
			return
		}
		j.deleting = true
	}
	p := path.Join(g.c.jobPath(), m.JobId)
	g.async(ctx, func(octx context.Context) (any, error) {
		_, err := g.fenced(octx, "delete", p, true, &zk.DeleteRequest{Path: p, Version: -1})
		return nil, ignoreNoNode(err)
	}, func(_ any, err error) {
		if j == nil || g.boss.jobs[m.JobId] != j {
			return
		}
		if err != nil {
			j.deleting = false // still recorded: delegated again later, by this boss or the next
			return
		}
		delete(g.boss.jobs, m.JobId)
	})
}

// dispatch delegates every job not delegated yet, or delegated and not
// done for redeliverAfter, round-robin over the workers last looked up.
// It runs in the tick handler: the lease guard admitted it.
func (g *globalActor) dispatch(ctx actor.Context, began int64) {
	workers := g.boss.workers
	if len(g.boss.jobs) == 0 || len(workers) == 0 {
		return
	}
	ids := make([]string, 0, len(g.boss.jobs))
	for id, j := range g.boss.jobs {
		if !j.deleting {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	now := time.Now()
	for _, id := range ids {
		j := g.boss.jobs[id]
		if !j.sentAt.IsZero() && now.Sub(j.sentAt) < redeliverAfter {
			continue
		}
		w := workers[g.boss.next%len(workers)]
		g.boss.next++
		j.sentAt = now
		work, _ := structpb.NewStruct(map[string]any{
			"job": id, "text": j.text, "epoch": fmt.Sprint(g.epoch),
			"boss_address": ctx.Self().Address, "boss_id": ctx.Self().Id,
		})
		g.c.out.emit("jobdeleg", id, g.epoch, pidString(w), began)
		ctx.Send(w, work)
	}
}

// workerActor does what a boss delegates, refusing a boss older (a lower
// epoch) than one it already served, and reports "jobdo" or "jobrefuse".
type workerActor struct {
	out    *emitter
	served int64 // highest boss epoch served
}

func (w *workerActor) Receive(ctx actor.Context) {
	m, ok := ctx.Message().(*structpb.Struct)
	if !ok {
		return
	}
	f := m.GetFields()
	id, epoch := f["job"].GetStringValue(), parseEpoch(f["epoch"].GetStringValue())
	if epoch < w.served {
		w.out.emit("jobrefuse", id, epoch, pidString(ctx.Self()), w.served)
		return
	}
	w.served = epoch
	w.out.emit("jobdo", id, epoch, pidString(ctx.Self()))
	boss := actor.NewPID(f["boss_address"].GetStringValue(), f["boss_id"].GetStringValue())
	ctx.Send(boss, &bossv1.Done{JobId: id, Worker: pidString(ctx.Self())})
}

// submit sends a job to the boss and reports "jobacc <id>" once the boss
// has recorded it, or "jobrej".
func (c *child) submit(ctx context.Context, text string) (string, error) {
	pid, err := c.node.WhereisGlobal(ctx, bossName)
	if err != nil {
		c.out.emit("jobrej", text, err)
		return "", err
	}
	res, err := c.node.System().Root.RequestFuture(pid, &bossv1.Submit{Text: text}, submitWait).Result()
	if err != nil {
		c.out.emit("jobrej", text, err)
		return "", err
	}
	switch r := res.(type) {
	case *bossv1.Accepted:
		c.out.emit("jobacc", r.JobId, text)
		return r.JobId, nil
	case *bossv1.Rejected:
		c.out.emit("jobrej", text, r.Reason)
		return "", fmt.Errorf("rejected: %s", r.Reason)
	}
	c.out.emit("jobrej", text, fmt.Sprintf("answer %T", res))
	return "", fmt.Errorf("answer %T", res)
}
