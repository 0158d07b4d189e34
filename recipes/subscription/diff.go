package subscription

import (
	"sort"

	"github.com/go-zookeeper/zk"

	subv1 "github.com/zkactor/zkactor/proto/recipes/subscription/v1"
)

// known is one child of the followed directory as the subscription last
// saw it. member is nil for a child whose data was not a usable record: it
// is remembered (so it is not read again) but never reported.
type known struct {
	czxid  int64
	member *subv1.Member
}

// view is what the subscriber has been told: the children of the
// directory as of the last step applied (a listing, then each event), and
// the directory's creation zxid and children version then (0, 0 when it
// did not exist; czxid 0 also when the directory was deleted or created
// since, so that the next listing checks every kept child).
type view struct {
	czxid    int64
	cversion int32
	children map[string]known
}

// plan is what a listing asks for before its messages can be sent: the
// children that left (known, not listed), the children to read (listed,
// not known), and the children listed and known whose life must be
// checked because the listing does not prove they are the ones known.
type plan struct {
	gone   []string
	fresh  []string
	verify []string
}

// diff compares a listing (names and the directory's stat; stat nil when
// the directory does not exist) with the view.
//
// The known children are trusted to be the same lives only when the
// directory is provably the same one (its creation zxid) and its children
// version moved by exactly the joins and leaves the names show. Otherwise
// something happened that the names hide: a child deleted and re-created
// under its id (a re-registration), or a child created and deleted
// between two listings. The first must be reported, so every kept child
// is then checked (one exists each).
func diff(v *view, names []string, stat *zk.Stat) plan {
	var p plan
	listed := make(map[string]bool, len(names))
	for _, n := range names {
		listed[n] = true
		if _, ok := v.children[n]; ok {
			p.verify = append(p.verify, n)
		} else {
			p.fresh = append(p.fresh, n)
		}
	}
	for n := range v.children {
		if !listed[n] {
			p.gone = append(p.gone, n)
		}
	}
	sort.Strings(p.gone)
	sort.Strings(p.fresh)
	sort.Strings(p.verify)
	if stat == nil || len(p.verify) == 0 {
		p.verify = nil
		return p
	}
	if v.czxid == stat.Czxid && int64(stat.Cversion)-int64(v.cversion) == int64(len(p.gone)+len(p.fresh)) {
		p.verify = nil
	}
	return p
}

// byCzxid sorts members in creation order.
func byCzxid(ms []*subv1.Member) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].Czxid < ms[j].Czxid })
}
