package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/leadership-dev/leadership/internal/version"
)

// newManCmd generates the man pages from the command tree itself, so that
// they never disagree with --help. Hidden: packagers run it, users read
// the pages.
func newManCmd(stdout io.Writer) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "man --dir DIR",
		Short:  "Write the man pages of every command (section 1) into DIR",
		Hidden: true,
		Args:   cobra.NoArgs,
		Example: `  leadership man --dir /usr/local/share/man/man1
  man leadership-status`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return usageErrorf("--dir is required: the directory to write the man pages into, e.g. --dir ./man1")
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return withCode(exitFailure, fmt.Errorf("cannot create --dir %q: %w", dir, err))
			}
			root := cmd.Root()
			// The completion command is added lazily by Execute; the
			// pages should describe it too.
			root.InitDefaultCompletionCmd()
			n, err := writeManPages(root, dir)
			if err != nil {
				return withCode(exitFailure, fmt.Errorf("writing the man pages into %q: %w", dir, err))
			}
			fmt.Fprintf(stdout, "wrote %d man pages into %s\n", n, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write the pages into (created if missing)")
	return cmd
}

// writeManPages writes one page per available command, named like
// leadership-status.1, and returns how many.
func writeManPages(root *cobra.Command, dir string) (int, error) {
	v := version.Get()
	header := &doc.GenManHeader{
		Title:   "",
		Section: "1",
		Source:  "leadership " + v.Version,
		Manual:  "leadership manual",
	}
	// The commit's date, not today's, so that two builds of one commit
	// write the same pages (cobra falls back on SOURCE_DATE_EPOCH, then now).
	if t, err := time.Parse(time.RFC3339, v.Date); err == nil {
		header.Date = &t
	}
	// Pages carry no "auto generated" footer with a date of its own.
	root.DisableAutoGenTag = true
	if err := doc.GenManTree(root, header, dir); err != nil {
		return 0, err
	}
	return countAvailable(root), nil
}

func countAvailable(c *cobra.Command) int {
	n := 1
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
			n += countAvailable(sub)
		}
	}
	return n
}
