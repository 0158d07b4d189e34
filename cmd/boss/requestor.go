package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	zka "github.com/zkactor/zkactor/actor"
	"github.com/zkactor/zkactor/global"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
)

const (
	// requestTimeout is how long a requestor waits for the boss's answer to
	// one Submit. It is longer than the boss's own ZooKeeper timeout
	// (storeTimeout), so the boss's Rejected arrives before it.
	requestTimeout = 10 * time.Second
	// submitTimeout bounds a requestor's attempts, resubmissions included.
	submitTimeout = 25 * time.Second
	// resubmitBackoffMin and resubmitBackoffMax bound the wait between them.
	resubmitBackoffMin = 200 * time.Millisecond
	resubmitBackoffMax = 2 * time.Second
)

// newToken returns a random job token.
func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// submit is the transient requestor: it hands one job to the boss and
// returns once the boss has recorded it (exit status 0), or says why not.
// The token is the job's identity: when the outcome of an attempt is
// unknown (no answer, or the boss could not reach ZooKeeper) it submits
// again with the same token, which records the job at most once.
func submit(ctx context.Context, node *zka.Node, token, text string, out *printer, errw io.Writer, where string) int {
	if err := checkJob(token, text); err != nil {
		fmt.Fprintf(errw, "boss: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, submitTimeout)
	defer cancel()
	unsure := false // an earlier attempt may have recorded the job
	again := fmt.Sprintf("to make sure it runs, submit it again with -token %s (the job is then recorded at most once)", token)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				fmt.Fprintf(errw, "boss: the job was not acknowledged within %v; it may or may not run; %s\n", submitTimeout, again)
				return 1
			case <-time.After(min(resubmitBackoffMin<<min(attempt-1, 10), resubmitBackoffMax)):
			}
		}
		boss, err := node.WhereisGlobal(ctx, "boss")
		if errors.Is(err, global.ErrNotFound) {
			if unsure {
				fmt.Fprintf(errw, "boss: no boss is running any more (%s); the job may have been recorded, and then runs once a boss starts; %s\n", where, again)
			} else {
				fmt.Fprintf(errw, "boss: no boss is running (%s); start one with: boss (no job words)\n", where)
			}
			return 1
		}
		if err != nil {
			fmt.Fprintf(errw, "boss: cannot find the boss (%s): %v; trying again\n", where, err)
			continue
		}
		res, err := node.System().Root.RequestFuture(boss, &bossv1.Submit{Text: text, Token: token}, requestTimeout).Result()
		switch {
		case errors.Is(err, actor.ErrTimeout):
			unsure = true
			fmt.Fprintf(errw, "boss: the boss at %s did not answer within %v; submitting again\n", pidString(boss), requestTimeout)
			continue
		case errors.Is(err, actor.ErrDeadLetter):
			fmt.Fprintf(errw, "boss: the boss at %s is unreachable (it may have just stopped; a new one is elected within the session timeout); submitting again\n", pidString(boss))
			continue
		case err != nil:
			unsure = true
			fmt.Fprintf(errw, "boss: submitting the job to %s: %v; submitting again\n", pidString(boss), err)
			continue
		}
		switch m := res.(type) {
		case *bossv1.Accepted:
			out.say("Job accepted: %s", m.JobId)
			return 0
		case *bossv1.Rejected:
			if m.Retry {
				unsure = true
				fmt.Fprintf(errw, "boss: the boss could not record the job yet: %s; submitting again\n", m.Reason)
				continue
			}
			fmt.Fprintf(errw, "boss: the boss rejected the job: %s\n", m.Reason)
			return 1
		default:
			fmt.Fprintf(errw, "boss: unexpected answer from the boss: %T\n", res)
			return 1
		}
	}
}
