//go:build race

package labels

// raceEnabled is true under -race, whose instrumentation changes allocation counts.
const raceEnabled = true
