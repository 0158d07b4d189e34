package main

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/zkactor/zkactor/cluster"
	bossv1 "github.com/zkactor/zkactor/proto/boss/v1"
)

// jobStore keeps the unfinished jobs in ZooKeeper, one persistent
// sequential znode each under <root>/jobs, so that they outlive the boss
// that accepted them:
//
//	<root>/jobs                 persistent
//	└── job-<seq>               persistent sequential   bossv1.Job{text, submitted_at}
//
// A job's id is its znode's name (ZooKeeper picks the sequence number, so
// the id is only known once the znode exists; the stored Job leaves id
// empty and List fills it in). A znode exists from before the requestor's
// Accepted until a worker's Done, so a job is lost by nobody: whoever is
// boss next finds it.
type jobStore struct {
	s       *cluster.Session
	dir     string      // <root>/jobs
	dirMade atomic.Bool // <root>/jobs is known to exist
}

const jobPrefix = "job-"

func newJobStore(s *cluster.Session, root string) *jobStore {
	return &jobStore{s: s, dir: strings.TrimSuffix(root, "/") + "/jobs"}
}

// Add records a new job and returns it with its id.
func (j *jobStore) Add(ctx context.Context, text string) (*bossv1.Job, error) {
	job := &bossv1.Job{Text: text, SubmittedAt: timestamppb.Now()}
	data, err := proto.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("add job: %w", err)
	}
	if err := j.ensureDir(ctx); err != nil {
		return nil, err
	}
	prefix := j.dir + "/" + jobPrefix
	var created string
	err = j.s.Do(ctx, cluster.Op{
		Name: "create",
		Path: prefix,
		// A create that lands after we gave up (and so answered Rejected)
		// would be run by a later boss; undo it.
		Late: func(err error) {
			if err == nil && created != "" {
				go func() { _ = j.remove(context.Background(), created) }()
			}
		},
	}, func(c *zk.Conn) error {
		p, err := c.Create(prefix, data, zk.FlagSequence, j.s.ACL())
		created = p
		return err
	})
	if err != nil {
		return nil, err
	}
	job.Id = path.Base(created)
	return job, nil
}

// Remove deletes a finished job; removing one already gone is no error
// (a job can be done twice across a failover).
func (j *jobStore) Remove(ctx context.Context, id string) error {
	if !strings.HasPrefix(id, jobPrefix) || strings.Contains(id, "/") {
		return fmt.Errorf("remove job: bad job id %q", id)
	}
	return j.remove(ctx, j.dir+"/"+id)
}

func (j *jobStore) remove(ctx context.Context, p string) error {
	return j.s.Do(ctx, cluster.Op{Name: "delete", Path: p, Idempotent: true}, func(c *zk.Conn) error {
		err := c.Delete(p, -1)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		return err
	})
}

// List returns every unfinished job, oldest first.
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
	sort.Strings(names) // the sequence number is zero-padded: lexical order is submission order
	var jobs []*bossv1.Job
	for _, name := range names {
		if !strings.HasPrefix(name, jobPrefix) {
			continue
		}
		p := j.dir + "/" + name
		var data []byte
		err := j.s.Do(ctx, cluster.Op{Name: "get", Path: p, Idempotent: true}, func(c *zk.Conn) error {
			var err error
			data, _, err = c.Get(p)
			return err
		})
		if errors.Is(err, zk.ErrNoNode) {
			continue // done in the meantime
		}
		if err != nil {
			return nil, err
		}
		job := &bossv1.Job{}
		if err := proto.Unmarshal(data, job); err != nil {
			return nil, fmt.Errorf("list jobs: decode %s: %w", p, err)
		}
		job.Id = name
		jobs = append(jobs, job)
	}
	return jobs, nil
}

// ensureDir creates <root>/jobs and its missing parents, persistent.
func (j *jobStore) ensureDir(ctx context.Context) error {
	if j.dirMade.Load() {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(j.dir, "/"), "/")
	p := ""
	for _, part := range parts {
		p += "/" + part
		dir := p
		err := j.s.Do(ctx, cluster.Op{Name: "create", Path: dir, Idempotent: true}, func(c *zk.Conn) error {
			_, err := c.Create(dir, nil, 0, j.s.ACL())
			if errors.Is(err, zk.ErrNodeExists) {
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	j.dirMade.Store(true)
	return nil
}
