package cluster

import (
	"context"
	"fmt"

	"github.com/zkactor/zkactor/internal/records"
	pb "github.com/zkactor/zkactor/proto/zkactor/v1"
)

// Membership: every live node keeps one ephemeral znode,
// <root>/nodes/<node-id>, holding a Node record. The registry creates it in
// New, re-creates it after a session expiry and deletes it in Close; the
// lookups below read it through the same watch-swept cache as services.

// peersEntry is what the cache holds for <root>/nodes.
type peersEntry struct {
	dir   *dirState
	nodes []*pb.Node
	addrs []string
}

// GetPeers returns the actor addresses of every live node, this one included,
// from the cache.
func (r *Registry) GetPeers(ctx context.Context) ([]string, error) {
	e, err := r.peers(ctx)
	if err != nil {
		return nil, err
	}
	return append([]string(nil), e.addrs...), nil
}

// Nodes returns the Node records of every live node, from the cache. The
// records are shared and must not be modified.
func (r *Registry) Nodes(ctx context.Context) ([]*pb.Node, error) {
	e, err := r.peers(ctx)
	if err != nil {
		return nil, err
	}
	return append([]*pb.Node(nil), e.nodes...), nil
}

func (r *Registry) peers(ctx context.Context) (*peersEntry, error) {
	e, err := r.nodes.Get(ctx, "nodes")
	if err != nil {
		return nil, fmt.Errorf("zkactor: list nodes: %w", err)
	}
	return e, nil
}

func (r *Registry) buildPeers(dir string, st *dirState) *peersEntry {
	e := &peersEntry{dir: st}
	for _, c := range st.children {
		n, err := records.Node(c.data)
		if err != nil {
			r.log.Warn("skipping a node znode zkactor cannot read (foreign or corrupt data)",
				"path", dir+"/"+c.name, "bytes", len(c.data), "err", err)
			continue
		}
		e.nodes = append(e.nodes, n)
		e.addrs = append(e.addrs, n.Address)
	}
	return e
}
