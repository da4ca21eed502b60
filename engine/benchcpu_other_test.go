//go:build !linux

package engine

import "testing"

// cpuLoop runs f in b.Loop (thread CPU time is measured on Linux only).
func cpuLoop(b *testing.B, f func()) {
	for b.Loop() {
		f()
	}
}
