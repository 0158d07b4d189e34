package cluster

import (
	"reflect"
	"sync"
	"unsafe"

	"github.com/go-zookeeper/zk"
)

// ClientWatchers counts the watch channels go-zookeeper holds for path (all
// watch types) on r's connection: each ChildrenW/ExistsW/GetW that set a
// watch adds one, and only the watch firing removes them.
func ClientWatchers(r *Registry) map[string]int {
	return connWatchers(r.s.conn)
}

func connWatchers(c *zk.Conn) map[string]int {
	v := reflect.ValueOf(c).Elem()
	lock := (*sync.Mutex)(unsafe.Pointer(v.FieldByName("watchersLock").UnsafeAddr()))
	lock.Lock()
	defer lock.Unlock()
	m := v.FieldByName("watchers")
	out := map[string]int{}
	iter := m.MapRange()
	for iter.Next() {
		path := iter.Key().Field(0).String()
		out[path] += iter.Value().Len()
	}
	return out
}

// DefaultMaxAbsentForTest is the absent-entry bound of the service cache.
const DefaultMaxAbsentForTest = 1024
