//go:build !linux

package load

import "time"

// sleepShort sleeps for d. Outside Linux it is time.Sleep, with its
// coarser wake-ups on an idle process.
func sleepShort(d time.Duration) { time.Sleep(d) }
