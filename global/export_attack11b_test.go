package global

import (
	"context"

	"github.com/go-zookeeper/zk"

	"github.com/zkactor/zkactor/cluster"
)

// Attack11bCandidacy returns e's live candidacy for name as an opaque
// handle (nil if none), for the hooks below.
func Attack11bCandidacy(e *Elections, name string) any {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.candidacies[name]; c != nil {
		return c
	}
	return nil
}

// Attack11bCreateOwn makes one more candidate znode of the candidacy (its
// GUID, its data) on the session the client has now: what a create of
// enter leaves when it was queued while the client was disconnected and
// sent, after an expiry, on the next session.
func Attack11bCreateOwn(ctx context.Context, h any) (string, error) {
	c := h.(*candidacy)
	prefix := c.dir + "/" + candidates.Name(c.guid)
	var created string
	err := c.e.s.Do(ctx, cluster.Op{Name: "create", Path: prefix}, func(conn *zk.Conn) (err error) {
		created, err = conn.Create(prefix, c.data, zk.FlagEphemeral|zk.FlagSequence, c.e.s.ACL())
		return err
	})
	return created, err
}

// Attack11bLate runs what enter's late callback runs (lateCreate) with
// the znode made and the session protected.Create hands it: the one read
// before the create.
func Attack11bLate(h any, created string, _ int64) {
	h.(*candidacy).lateCreate(created, nil)
}
