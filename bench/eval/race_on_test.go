//go:build race

package eval

// raceDetector is true under -race, where replaying the real data sets
// takes minutes; make test runs those tests in a plain step of their own.
const raceDetector = true
