package config

import (
	"reflect"
	"sync"
	"unsafe"

	"github.com/go-zookeeper/zk"
	"google.golang.org/protobuf/types/known/structpb"
)

// Subscriptions is the number of live subscriptions of st.
func Subscriptions(st *Store) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.subs)
}

// Decode is decode, for the fuzz test.
var Decode = decode

// Validate is the check every write makes of its values.
func Validate(v *structpb.Struct) error {
	_, _, err := encode(v)
	return err
}

// ClientWatches is the number of watch channels go-zookeeper's client
// holds for path. go-zookeeper exposes none: this reads its private map,
// under its lock.
func ClientWatches(c *zk.Conn, path string) int {
	v := reflect.ValueOf(c).Elem()
	mu := (*sync.Mutex)(unsafe.Pointer(v.FieldByName("watchersLock").UnsafeAddr()))
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for it := v.FieldByName("watchers").MapRange(); it.Next(); {
		if it.Key().Field(0).String() == path {
			n += it.Value().Len()
		}
	}
	return n
}
