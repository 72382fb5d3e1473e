package main

import (
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// kubectl runs "kubectl leadership ..." as the executable kubectl-leadership
// found on PATH, and completes it with kubectl_complete-leadership. Both are
// this same binary under another name (a symbolic link or a copy; krew
// installs a link): one build, one version, no code to keep in step. The
// name it was started under changes only what help and errors call it, and
// the completion entry point.
const (
	pluginExecutable   = "kubectl-leadership"
	pluginCompleteExec = "kubectl_complete-leadership"
	pluginDisplayName  = "kubectl leadership"
)

// invocation maps the executable's name and arguments to the name to show
// in help and the arguments for the command tree.
func invocation(argv0 string, args []string) (name string, _ []string) {
	base := strings.TrimSuffix(filepath.Base(argv0), ".exe")
	switch base {
	case pluginExecutable:
		return pluginDisplayName, args
	case pluginCompleteExec:
		// kubectl (1.26+) asks for completions of a plugin's arguments by
		// running kubectl_complete-<plugin> with them; cobra answers that
		// request as its hidden __complete command.
		return pluginDisplayName, append([]string{cobra.ShellCompRequestCmd}, args...)
	}
	return "leadership", args
}

// setDisplayName makes help, usage and errors say name ("kubectl
// leadership") instead of the root command's own.
func setDisplayName(root *cobra.Command, name string) {
	if name == root.Name() {
		return
	}
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations[cobra.CommandDisplayNameAnnotation] = name
}
