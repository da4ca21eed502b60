//go:build !race

package engine

// raceDetector is true under -race; see race_on_test.go.
const raceDetector = false
