package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	"github.com/zkactor/zkactor/internal/zkutil"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
)

// jobStore keeps the unfinished jobs in ZooKeeper, one persistent znode
// each under <root>/jobs, so that they outlive the boss that accepted them:
//
//	<root>/jobs                 persistent
//	└── job-<token>             persistent   bossv1.Job{text, submitted_at}
//
// The requestor chooses the token, so a job's id (its znode's name) is
// known before it is recorded: a requestor that did not hear the boss's
// answer submits again with the same token, and the boss finds the job
// instead of recording it twice. A znode exists from before the
// requestor's Accepted until a worker's Done, so a job is lost by nobody:
// whoever is boss next finds it.
type jobStore struct {
	s    *cluster.Session
	root string // <root>, where zkutil.CreateWithParents stops protecting parents
	dir  string // <root>/jobs
	log  *slog.Logger
}

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

// errTokenUsed: the token already names a different job.
var errTokenUsed = errors.New("the token already names a different job")

func newJobStore(s *cluster.Session, root string, log *slog.Logger) *jobStore {
	root = strings.TrimSuffix(root, "/")
	return &jobStore{s: s, root: root, dir: root + "/jobs", log: log}
}

// checkToken reports whether token may name a job: 1 to maxTokenLen
// letters, digits, '-' or '_', so that "job-<token>" is one znode name.
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

// jobID is the id, and znode name, of the job a token names.
func jobID(token string) string { return jobPrefix + token }

// decodeJob decodes a child of <root>/jobs. An error means the znode is
// not a job this program recorded (another client's, or garbage).
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

// Add records the job that token names, or finds it recorded already, by
// an earlier Submit whose answer was lost (e.g. the create succeeded but
// the connection failed before its reply). It returns errTokenUsed if the
// token names a job with another text.
func (j *jobStore) Add(ctx context.Context, token, text string) (*bossv1.Job, error) {
	if err := checkJob(token, text); err != nil {
		return nil, err
	}
	job := &bossv1.Job{Text: text, SubmittedAt: timestamppb.Now()}
	data, err := proto.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("add job: %w", err)
	}
	id := jobID(token)
	p := j.dir + "/" + id
	// Idempotent: a create retried after a connection error finds the node
	// it made, and that is handled below like any resubmission.
	err = j.s.Do(ctx, cluster.Op{Name: "create", Path: p, Idempotent: true}, func(c *zk.Conn) error {
		_, err := zkutil.CreateWithParents(c, j.root, p, data, 0, j.s.ACL())
		return err
	})
	if err == nil {
		job.Id = id
		return job, nil
	}
	if !errors.Is(err, zk.ErrNodeExists) {
		return nil, err
	}
	data, err = j.get(ctx, p)
	if errors.Is(err, zk.ErrNoNode) {
		// Done and removed since the create: the job ran. Recording it
		// again would run it twice; it is answered as recorded.
		job.Id = id
		return job, nil
	}
	if err != nil {
		return nil, err
	}
	old, err := decodeJob(id, data)
	if err != nil {
		return nil, fmt.Errorf("add job: %s exists and is not a job: %w", p, err)
	}
	if old.Text != text {
		return nil, fmt.Errorf("add job %s: %w", p, errTokenUsed)
	}
	return old, nil
}

// Remove deletes a finished job; removing one already gone is no error
// (a job can be done twice across a failover).
func (j *jobStore) Remove(ctx context.Context, id string) error {
	token, ok := strings.CutPrefix(id, jobPrefix)
	if !ok || checkToken(token) != nil {
		return fmt.Errorf("remove job: bad job id %q", id)
	}
	p := j.dir + "/" + id
	return j.s.Do(ctx, cluster.Op{Name: "delete", Path: p, Idempotent: true}, func(c *zk.Conn) error {
		return zkutil.Delete(c, p, -1)
	})
}

func (j *jobStore) get(ctx context.Context, p string) ([]byte, error) {
	var data []byte
	err := j.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(c *zk.Conn) error {
		var err error
		data, _, err = c.Get(p)
		return err
	})
	return data, err
}

// List returns every unfinished job, oldest first. A child of <root>/jobs
// that is not a job (another client's znode, garbage, one we may not read)
// is logged and skipped: it must not hide the jobs next to it. An error
// means the listing could not be done at all (e.g. no connection); the
// caller retries.
func (j *jobStore) List(ctx context.Context) ([]*bossv1.Job, error) {
	var names []string
	err := j.s.Do(ctx, cluster.Op{Name: "list", Path: j.dir, Idempotent: true}, func(c *zk.Conn) error {
		var err error
		names, _, err = c.Children(j.dir)
		if errors.Is(err, zk.ErrNoNode) {
			names, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var jobs []*bossv1.Job
	for _, name := range names {
		p := j.dir + "/" + name
		data, err := j.get(ctx, p)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			continue // done in the meantime
		case errors.Is(err, zk.ErrNoAuth):
			j.log.Warn("skipping a znode among the jobs that this node may not read", "path", p, "err", err)
			continue
		case err != nil:
			return nil, err
		}
		job, err := decodeJob(name, data)
		if err != nil {
			j.log.Warn("skipping a znode among the jobs that is not a job", "path", p, "err", err)
			continue
		}
		jobs = append(jobs, job)
	}
	sortJobs(jobs)
	return jobs, nil
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
