//go:build !unix

package cputime

import "time"

// Process reports false: process CPU time is read on unix only.
func Process() (time.Duration, bool) { return 0, false }
