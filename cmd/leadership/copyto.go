package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// newCopyToCmd copies the running binary into a directory: how an init
// container brings leadership into an application image that lacks it
// (the project's image is FROM scratch, so it has no cp).
func newCopyToCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "copy-to DIR",
		Short: "Copy this leadership binary into DIR (for an init container that brings it into another image)",
		Long: `Copy this leadership binary into DIR as DIR/leadership, executable by every
user. The Helm chart's init container runs it from the project's image to fill
an emptyDir volume that the application's own container mounts, so that the
application's image runs 'leadership run' without containing it.

The copy is written beside the target and renamed over it, so a container
never starts a half-written binary.`,
		Example: `  # in an init container of the project's image, with an emptyDir at /leadership-bin
  leadership copy-to /leadership-bin
  # then, in the application's container
  /leadership-bin/leadership run --lease my-job -- ./my-job`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dst, err := copySelf(args[0])
			if err != nil {
				return withCode(exitFailure, err)
			}
			fmt.Fprintln(stdout, dst)
			return nil
		},
	}
}

func copySelf(dir string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("cannot find this program's own executable: %w", err)
	}
	src, err := os.Open(exe)
	if err != nil {
		return "", fmt.Errorf("cannot read this program's own executable: %w", err)
	}
	defer src.Close()
	dst := filepath.Join(dir, "leadership")
	tmp, err := os.CreateTemp(dir, ".leadership-*")
	if err != nil {
		return "", fmt.Errorf("cannot write into %s (is it a writable volume?): %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return "", fmt.Errorf("copying to %s: %w", tmp.Name(), err)
	}
	// Readable and executable by every user: the application's container
	// may run as another user than this one.
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	return dst, nil
}
