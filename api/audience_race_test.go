//go:build race

package api_test

// raceDetector reports a -race build: its instrumentation slows ranking
// about tenfold, so the large-audience test streams fewer members.
const raceDetector = true
