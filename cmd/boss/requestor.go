package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	zka "github.com/zkactor/zkactor/actor"
	"github.com/zkactor/zkactor/global"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
)

// requestTimeout is how long a requestor waits for the boss's answer.
// It is longer than the boss's own ZooKeeper timeout (storeTimeout).
const requestTimeout = 10 * time.Second

// submit is the transient requestor: it hands one job to the boss and
// returns once the boss has recorded it (exit status 0), or says why not.
func submit(ctx context.Context, node *zka.Node, text string, out *printer, errw io.Writer, where string) int {
	boss, err := node.WhereisGlobal(ctx, "boss")
	if errors.Is(err, global.ErrNotFound) {
		fmt.Fprintf(errw, "boss: no boss is running (%s); start one with: boss (no job words)\n", where)
		return 1
	}
	if err != nil {
		fmt.Fprintf(errw, "boss: cannot find the boss (%s): %v\n", where, err)
		return 1
	}
	res, err := node.System().Root.RequestFuture(boss, &bossv1.Submit{Text: text}, requestTimeout).Result()
	switch {
	case errors.Is(err, actor.ErrTimeout):
		fmt.Fprintf(errw, "boss: the boss at %s did not acknowledge the job within %v; the job may or may not run\n", pidString(boss), requestTimeout)
		return 1
	case errors.Is(err, actor.ErrDeadLetter):
		fmt.Fprintf(errw, "boss: the boss at %s is unreachable (it may have just stopped; a new one is elected within the session timeout); the job was not accepted\n", pidString(boss))
		return 1
	case err != nil:
		fmt.Fprintf(errw, "boss: submitting the job to %s: %v\n", pidString(boss), err)
		return 1
	}
	switch m := res.(type) {
	case *bossv1.Accepted:
		out.say("Job accepted: %s", m.JobId)
		return 0
	case *bossv1.Rejected:
		fmt.Fprintf(errw, "boss: the boss rejected the job: %s\n", m.Reason)
		return 1
	default:
		fmt.Fprintf(errw, "boss: unexpected answer from the boss: %T\n", res)
		return 1
	}
}
