//go:build !race

package api_test

// raceDetector reports a -race build; see audience_race_test.go.
const raceDetector = false
