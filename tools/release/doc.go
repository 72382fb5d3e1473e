// Package release holds the pieces of the project's release build, each in
// a package of its own: source (which version, commit and time is being
// built), gobuild (static, reproducible cross-compilation), image (the OCI
// image index, written as a layout and a tarball) and krew (the kubectl
// plugin's archives and krew manifest). tools/cmd/release puts them
// together.
package release
