// Package modversion reports the version of a module built into the
// running binary, for messages that name the version they speak of (for
// example "client-go v0.37.2 offers no clock to replace").
package modversion

import "runtime/debug"

// Of is the version of module path built in (its replacement's, if
// replaced), or "(version unknown)".
func Of(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "(version unknown)"
}
