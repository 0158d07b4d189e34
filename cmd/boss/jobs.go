package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
)

// The boss keeps the unfinished jobs in the durable work queue "jobs"
// (recipes/workqueue), so that they outlive the boss that accepted them:
//
//	<root>/queues/jobs/items/job-<token>-<seq>   persistent   workqueue Item{payload: bossv1.Job{text}}
//	<root>/queues/jobs/claims/job-<token>-<seq>  ephemeral    held by the boss that delegates it
//	<root>/queues/jobs/keys/job-<token>          persistent   the token is in use
//
// The requestor chooses the token, and the job's id, "job-<token>", is the
// item's idempotency key: a requestor that did not hear the boss's answer
// submits again with the same token, and the queue finds the job instead
// of recording it twice. An item exists from before the requestor's
// Accepted until a worker's Done (the boss's Ack), and the boss holds it by
// its session's claim: when the boss's term ends, its feeder gives the
// jobs back, or its session's end does, and the next boss takes them.
const (
	jobPrefix = "job-"
	// maxTokenLen bounds a job's token, and so its znode's name.
	maxTokenLen = 64
	// maxJobText bounds a job's text. Each job is one znode, and ZooKeeper
	// drops the connection of a client whose request exceeds jute.maxbuffer
	// (about 1 MiB): the boss's node would lose its connection, and with it
	// possibly its term. 64 KiB is far below that, with room for the path
	// and the encoding.
	maxJobText = 64 << 10
)

// queueName is the work queue of the jobs.
const queueName = "jobs"

// checkToken reports whether token may name a job: 1 to maxTokenLen
// letters, digits, '-' or '_', not ending in '-', so that "job-<token>" is
// one znode name and a work queue key.
func checkToken(token string) error {
	if token == "" {
		return errors.New("the job has no token")
	}
	if len(token) > maxTokenLen {
		return fmt.Errorf("the job's token is %d characters long; the limit is %d", len(token), maxTokenLen)
	}
	for _, r := range token {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("the job's token %q has a character other than letters, digits, '-' and '_'", token)
		}
	}
	if strings.HasSuffix(token, "-") {
		// The job's id is a work queue key, which may not end in '-'.
		return fmt.Errorf("the job's token %q ends in '-'", token)
	}
	return nil
}

// checkJob checks a job as a requestor submits it, before anything is
// stored; its error is the reason given to the requestor.
func checkJob(token, text string) error {
	if err := checkToken(token); err != nil {
		return err
	}
	switch {
	case text == "":
		return errors.New("the job is empty")
	case len(text) > maxJobText:
		return fmt.Errorf("the job is too large: %d bytes; the limit is %d bytes (%d KiB), because jobs are stored in ZooKeeper", len(text), maxJobText, maxJobText>>10)
	case !utf8.ValidString(text):
		return errors.New("the job is not valid UTF-8 text")
	}
	return nil
}

// jobID is the id, and item key, of the job a token names.
func jobID(token string) string { return jobPrefix + token }

// jobPayload is a job's item payload: its text only, so that a
// resubmission of the same job under the same token is the same payload
// (the queue's PutAt is the job's submission time).
func jobPayload(text string) ([]byte, error) {
	return proto.Marshal(&bossv1.Job{Text: text})
}

// decodeJob decodes the payload of an item whose key is name. An error
// means the item is not a job this program recorded (another client's, or
// garbage).
func decodeJob(name string, data []byte) (*bossv1.Job, error) {
	token, ok := strings.CutPrefix(name, jobPrefix)
	if !ok {
		return nil, fmt.Errorf("name %q does not start with %q", name, jobPrefix)
	}
	if err := checkToken(token); err != nil {
		return nil, fmt.Errorf("name %q: %w", name, err)
	}
	job := &bossv1.Job{}
	if err := proto.Unmarshal(data, job); err != nil {
		return nil, err
	}
	if err := checkJob(token, job.Text); err != nil {
		return nil, err
	}
	job.Id = name
	return job, nil
}

// sortJobs orders jobs by submission time, then id.
func sortJobs(jobs []*bossv1.Job) {
	sort.SliceStable(jobs, func(a, b int) bool { return jobBefore(jobs[a], jobs[b]) })
}

func jobBefore(a, b *bossv1.Job) bool {
	ta, tb := a.GetSubmittedAt().AsTime(), b.GetSubmittedAt().AsTime()
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.GetId() < b.GetId()
}
