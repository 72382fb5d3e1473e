//go:build !race

package leadership_test

// raceEnabled scales the simulation's CI budget: the race detector slows it.
const raceEnabled = false
