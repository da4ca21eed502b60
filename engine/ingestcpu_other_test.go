//go:build !unix

package engine_test

import "time"

// processCPU reports false: process CPU time is read on unix only.
func processCPU() (time.Duration, bool) { return 0, false }
