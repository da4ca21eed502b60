package cputime

import (
	"syscall"
	"time"
)

// Thread returns the CPU time the calling thread has used, or false; lock
// the goroutine to its thread (runtime.LockOSThread) around the span.
func Thread() (time.Duration, bool) { return usage(syscall.RUSAGE_THREAD) }
