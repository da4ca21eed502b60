package load

import (
	"syscall"
	"time"
)

// sleepShort blocks the calling thread for d in nanosleep(2), which wakes
// within the kernel's timer slack (50µs by default).
func sleepShort(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
