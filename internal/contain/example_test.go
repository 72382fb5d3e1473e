package contain_test

import (
	"context"
	"log/slog"

	"github.com/leadership-dev/leadership/internal/contain"
)

// A supervisor becomes a subreaper and reaps what is re-parented to it.
func ExampleNewReaper() {
	r, err := contain.NewReaper(slog.Default())
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	// ... start children through r.Spawn; on losing their guard:
	_ = r.KillAdopted(ctx)
}

// Where a sub-cgroup can be made, one per supervised tree.
func ExampleDetectCgroups() {
	cgs, err := contain.DetectCgroups()
	if err != nil {
		slog.Info("no cgroup containment", "why", err)
		return
	}
	cg, err := cgs.New("my-tree")
	if err != nil {
		panic(err)
	}
	defer cg.Remove()
	// ... start processes with SysProcAttr.CgroupFD from cg.Open(); then:
	_ = cg.Kill()
}
