package workqueue

import (
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/go-zookeeper/zk"
)

// AddStray records, as the late outcome of a take that gave up would, that
// the take with token may have left a claim on the item name.
func AddStray(q *Queue, name, token string) { q.addStray(name, token) }

// Place is where q's Take waits: "first" in the line of waiters (its
// watches on items/ set), "behind" another waiter, or "" (not waiting).
func Place(q *Queue) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.place
}

// SetTestHookBeforeJoin sets the hook that runs before a waiter's create,
// and returns a function that removes it.
func SetTestHookBeforeJoin(f func()) (restore func()) {
	testHookBeforeJoin = f
	return func() { testHookBeforeJoin = nil }
}

// SetAnswerTimeout sets the bound of one attempt at an answer, and returns
// a function that restores it.
func SetAnswerTimeout(d time.Duration) (restore func()) {
	old := answerTimeout
	answerTimeout = d
	return func() { answerTimeout = old }
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

// Feeders is the number of feeders q knows.
func Feeders(q *Queue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.feeders)
}

// SetTestHookBeforeWatchPred sets the hook that runs before a waiter sets
// its watch on the waiter before it, and returns a function that removes
// it.
func SetTestHookBeforeWatchPred(f func(pred string)) (restore func()) {
	testHookBeforeWatchPred = f
	return func() { testHookBeforeWatchPred = nil }
}
