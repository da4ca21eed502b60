//go:build unix

package scale

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time the process has used, all threads, user
// and system: on a machine shared with other work it says what a restart
// cost where its wall time also counts the waits for a core.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
