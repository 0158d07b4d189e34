package chaos

import (
	"context"
	"fmt"
	"path"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

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
	storeWait      = 2 * time.Second
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
			g.boss = &bossState{jobs: map[string]*bossJob{}}
		}
		return g
	})
}

// globalActor reports its term: "gstart" when it handles Elected (its
// first message), "gtick" on every tick while it runs, "gstop" when it
// handles Stopping. A message before Elected, or a second Elected, is
// reported as "gbad".
type globalActor struct {
	c       *child
	name    string
	epoch   int64
	elected bool
	stop    func()
	boss    *bossState
}

func (g *globalActor) Receive(ctx actor.Context) {
	// When the handler began: a process frozen in the middle of a handler
	// reports it after the thaw, but the guard let the message in before.
	began := Now()
	switch m := ctx.Message().(type) {
	case *actor.Started, *actor.Stopped, *actor.Restarting:
		return
	case *actor.Stopping:
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
		g.elected, g.epoch = true, m.Epoch
		g.c.out.emit("gstart", g.name, g.epoch, pidString(ctx.Self()))
		g.stop = startTicker(ctx.ActorSystem(), ctx.Self())
		if g.boss != nil {
			g.bossElected()
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
			g.dispatch(ctx, began)
		}
	case *bossv1.Submit:
		if g.boss != nil {
			g.submitted(ctx, m, began)
		}
	case *bossv1.Done:
		if g.boss != nil {
			g.done(m)
		}
	}
}

// bossState is the boss's memory of the unfinished jobs. The job store in
// ZooKeeper is the truth: a new boss starts from it.
type bossState struct {
	jobs   map[string]*bossJob
	next   int  // round-robin over the workers
	listed bool // the store has been read since Elected
}

type bossJob struct {
	text   string
	sentAt time.Time // zero: not delegated yet
}

func (g *globalActor) bossElected() {
	ctx, cancel := context.WithTimeout(context.Background(), storeWait)
	defer cancel()
	dir := g.c.jobPath()
	var names []string
	err := g.c.jobsDo(ctx, "list", dir, func(conn *zk.Conn) error {
		var err error
		names, _, err = conn.Children(dir)
		return err
	})
	if err != nil {
		// Tried again on the next tick: a boss must not go on with an
		// empty queue while acknowledged jobs wait in the store.
		g.c.out.emit("bosserr", g.epoch, "list jobs:", err)
		return
	}
	g.boss.listed = true
	for _, name := range names {
		p := path.Join(dir, name)
		var data []byte
		err := g.c.jobsDo(ctx, "get", p, func(conn *zk.Conn) error {
			var err error
			data, _, err = conn.Get(p)
			return err
		})
		job := &bossv1.Job{}
		if err == nil {
			err = proto.Unmarshal(data, job)
		}
		if err != nil {
			g.c.log.Warn("boss: skipping job", "job", name, "err", err)
			continue
		}
		if g.boss.jobs[name] == nil {
			g.boss.jobs[name] = &bossJob{text: job.Text}
		}
	}
	g.c.out.emit("bosslist", g.epoch, len(g.boss.jobs))
}

func (g *globalActor) submitted(ctx actor.Context, m *bossv1.Submit, began int64) {
	data, _ := proto.Marshal(&bossv1.Job{Text: m.Text})
	sctx, cancel := context.WithTimeout(context.Background(), storeWait)
	defer cancel()
	prefix := path.Join(g.c.jobPath(), "job-")
	var created string
	err := g.c.jobsDo(sctx, "create", prefix, func(conn *zk.Conn) error {
		var err error
		created, err = conn.Create(prefix, data, zk.FlagSequence, zk.WorldACL(zk.PermAll))
		return err
	})
	if err != nil {
		ctx.Respond(&bossv1.Rejected{Reason: err.Error()})
		return
	}
	id := path.Base(created)
	g.boss.jobs[id] = &bossJob{text: m.Text}
	g.c.out.emit("jobstored", id, g.epoch, began)
	ctx.Respond(&bossv1.Accepted{JobId: id})
}

func (g *globalActor) done(m *bossv1.Done) {
	ctx, cancel := context.WithTimeout(context.Background(), storeWait)
	defer cancel()
	p := path.Join(g.c.jobPath(), m.JobId)
	err := g.c.jobsDo(ctx, "delete", p, func(conn *zk.Conn) error { return ignoreNoNode(conn.Delete(p, -1)) })
	if err != nil {
		return // still recorded: delegated again later, by this boss or the next
	}
	delete(g.boss.jobs, m.JobId)
}

// dispatch delegates every job not delegated yet, or delegated and not
// done for redeliverAfter, round-robin over the registered workers.
func (g *globalActor) dispatch(ctx actor.Context, began int64) {
	if !g.boss.listed {
		g.bossElected()
	}
	if len(g.boss.jobs) == 0 {
		return
	}
	lctx, cancel := context.WithTimeout(context.Background(), storeWait)
	workers, err := g.c.node.GetCapable(lctx, workerService)
	cancel()
	if err != nil || len(workers) == 0 {
		return
	}
	ids := make([]string, 0, len(g.boss.jobs))
	for id := range g.boss.jobs {
		ids = append(ids, id)
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
	res, err := c.node.System().Root.RequestFuture(pid, &bossv1.Submit{Text: text}, 3*time.Second).Result()
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
