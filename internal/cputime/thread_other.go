//go:build !linux

package cputime

import "time"

// Thread reports false: thread CPU time is read on Linux only.
func Thread() (time.Duration, bool) { return 0, false }
