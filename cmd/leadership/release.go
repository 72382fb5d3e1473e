package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/leadership-dev/leadership/internal/version"
)

// addReleaseCommands adds what a shipped binary needs besides its work:
// version and --version, shell completion, and the hidden man page
// generator.
func addReleaseCommands(root *cobra.Command, stdout io.Writer) {
	root.Version = version.Get().String()
	root.SetVersionTemplate("{{.DisplayName}} {{.Version}}\n")
	root.AddCommand(newVersionCmd(stdout), newManCmd(stdout))
	// cobra's own completion command (bash, zsh, fish, powershell), added
	// by Execute.
	root.CompletionOptions.DisableDefaultCmd = false
}
