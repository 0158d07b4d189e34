package subscription

import (
	"fmt"
	"testing"

	"github.com/go-zookeeper/zk"
)

// Unit tests of the listing arithmetic (no ZooKeeper needed).
func TestDiff(t *testing.T) {
	base := func(names ...string) *view {
		v := &view{czxid: 7, cversion: 10, children: map[string]known{}}
		for i, n := range names {
			v.children[n] = known{czxid: int64(100 + i)}
		}
		return v
	}
	for _, tc := range []struct {
		name  string
		view  *view
		names []string
		stat  *zk.Stat
		want  string
	}{
		{"first listing", &view{children: map[string]known{}}, []string{"b", "a"}, &zk.Stat{Czxid: 7, Cversion: 2},
			"gone [] fresh [a b] verify []"},
		{"one join", base("a", "b"), []string{"a", "b", "c"}, &zk.Stat{Czxid: 7, Cversion: 11},
			"gone [] fresh [c] verify []"},
		{"one leave", base("a", "b"), []string{"b"}, &zk.Stat{Czxid: 7, Cversion: 11},
			"gone [a] fresh [] verify []"},
		{"join and leave coalesced", base("a", "b"), []string{"b", "c"}, &zk.Stat{Czxid: 7, Cversion: 12},
			"gone [a] fresh [c] verify []"},
		{"re-created under its id: kept ones checked", base("a", "b"), []string{"a", "b"}, &zk.Stat{Czxid: 7, Cversion: 12},
			"gone [] fresh [] verify [a b]"},
		{"came and went unseen: kept ones checked", base("a"), []string{"a", "c"}, &zk.Stat{Czxid: 7, Cversion: 13},
			"gone [] fresh [c] verify [a]"},
		{"directory re-created", base("a"), []string{"a"}, &zk.Stat{Czxid: 9, Cversion: 0},
			"gone [] fresh [] verify [a]"},
		{"directory gone", base("a", "b"), nil, nil,
			"gone [a b] fresh [] verify []"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := diff(tc.view, tc.names, tc.stat)
			if got := fmt.Sprintf("gone %v fresh %v verify %v", p.gone, p.fresh, p.verify); got != tc.want {
				t.Errorf("diff = %s, want %s", got, tc.want)
			}
		})
	}
}
