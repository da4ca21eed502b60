//go:build unix

package cputime

import (
	"syscall"
	"time"
)

// Process returns the CPU time the whole process has used (every thread,
// the garbage collector's included, user and system), or false.
func Process() (time.Duration, bool) { return usage(syscall.RUSAGE_SELF) }

func usage(who int) (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
