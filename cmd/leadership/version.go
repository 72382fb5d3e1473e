package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/leadership-dev/leadership/internal/version"
)

func newVersionCmd(stdout io.Writer) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version [-o text|json|yaml]",
		Short: "Print the version, commit, commit date and Go version of this build",
		Long: `Print which build this is: the release version (the repository's VERSION file,
set by the release and image builds), the commit it was built from and that
commit's time, and the Go toolchain and platform. A binary built with a plain
'go build' says "(devel)" and the commit that Go recorded, if any.`,
		Example: `  leadership version
  leadership version -o json | jq -r .version`,
		Args: cobra.NoArgs,
		// Needs no cluster and no logging set-up.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, args []string) error {
			v := version.Get()
			switch output {
			case "text":
				mod := ""
				if v.Modified {
					mod = " (uncommitted changes)"
				}
				_, err := fmt.Fprintf(stdout, "Version:    %s\nCommit:     %s%s\nDate:       %s\nGo version: %s\nPlatform:   %s\n",
					v.Version, v.Commit, mod, v.Date, v.GoVersion, v.Platform)
				return err
			case "json", "yaml":
				return printObject(stdout, output, v)
			}
			return usageErrorf("invalid -o %q: use text, json or yaml", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or yaml")
	return cmd
}
