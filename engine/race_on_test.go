//go:build race

package engine

// raceDetector is true under -race, where the memory tests run smaller:
// the detector slows them tenfold and inflates the heap they measure.
const raceDetector = true
