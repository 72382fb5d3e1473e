//go:build race

package chaos

// raceEnabled: the candidates are built with the race detector too.
const raceEnabled = true
