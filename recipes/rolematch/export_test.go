package rolematch

import (
	"reflect"
	"sync"
	"testing"
	"unsafe"

	"github.com/go-zookeeper/zk"
)

// SetTestHookBeforeCreate sets testHookBeforeCreate for the test's duration.
func SetTestHookBeforeCreate(t *testing.T, f func(path string)) {
	testHookBeforeCreate = f
	t.Cleanup(func() { testHookBeforeCreate = nil })
}

// SetTestHookAfterCreate sets testHookAfterCreate for the test's duration.
func SetTestHookAfterCreate(t *testing.T, f func(path string, won bool, err error)) {
	testHookAfterCreate = f
	t.Cleanup(func() { testHookAfterCreate = nil })
}

// SetTestHookUnusableSpec sets testHookUnusableSpec for the test's duration.
func SetTestHookUnusableSpec(t *testing.T, f func(role string)) {
	testHookUnusableSpec = f
	t.Cleanup(func() { testHookUnusableSpec = nil })
}

// SetTestHookStrayKept sets testHookStrayKept for the test's duration.
func SetTestHookStrayKept(t *testing.T, f func(path string)) {
	testHookStrayKept = f
	t.Cleanup(func() { testHookStrayKept = nil })
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
