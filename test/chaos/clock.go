package chaos

import (
	"syscall"
	"time"
	"unsafe"
)

// Now reads CLOCK_MONOTONIC, in nanoseconds. Every process on the machine
// reads the same clock, so timestamps taken by the driver and by the node
// processes can be compared. time.Now's monotonic reading cannot: each Go
// process counts it from its own start.
func Now() int64 {
	var ts syscall.Timespec
	const clockMonotonic = 1 // CLOCK_MONOTONIC in <linux/time.h>
	_, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		panic("chaos: clock_gettime(CLOCK_MONOTONIC): " + errno.Error())
	}
	return ts.Nano()
}

// since is the time from a monotonic timestamp until now.
func since(t int64) time.Duration { return time.Duration(Now() - t) }
