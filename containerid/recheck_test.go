package containerid_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ccnp-eventlog/ccnp-eventlog/containerid"
)

// TestRecheck: a process told once is taken as told while its cgroup file
// reads the same, for RecheckAfter; a changed cgroup file, or the time
// passing, tells it again from scratch. The ownership of a cgroup's
// parents is the part Recheck does not look at again within the second:
// only root can change it, which is what this test does.
func TestRecheck(t *testing.T) {
	ctx := context.Background()
	tr := newTree(t)
	mp := tr.mount("", "/", "")
	path := systemdPath(podA, id1)
	ctr := tr.mkdir(mp, path)
	tr.mkdir(ctr, "sub")
	n := tr.node(lines("0::/system.slice/eventlog-server.service"))
	id := containerid.NewIdentifier(n, tr.proc, nil)
	pid := tr.caller(lines("0::" + path))
	cgroupFile := filepath.Join(tr.proc, "101", "cgroup")
	if pid != 101 {
		t.Fatalf("pid %d", pid)
	}

	told, err := id.Recheck(ctx, pid, containerid.Identity{})
	wantID(t, told.Container, err, id1)
	start := time.Now()

	// Root gives the pod's cgroup to a user: told now, the container would
	// be refused; within RecheckAfter, with the same cgroup file, it is not
	// told again.
	chown(t, filepath.Dir(ctr), 65534)
	again, err := id.Recheck(ctx, pid, told)
	wantID(t, again.Container, err, id1)
	if _, err := id.Recheck(ctx, pid, containerid.Identity{}); err == nil {
		t.Fatal("told from scratch, a container below a user's cgroup was not refused")
	}

	// The process moves (within its container): its cgroup file changes,
	// so it is told again, and refused.
	if err := os.WriteFile(cgroupFile, lines("0::"+path+"/sub"), 0o444); err != nil {
		t.Fatal(err)
	}
	_, err = id.Recheck(ctx, pid, told)
	wantErr(t, err, containerid.ErrNotRuntimeMade, "owned by uid 65534")

	// Back where it was told: the same file, still within the second.
	if err := os.WriteFile(cgroupFile, lines("0::"+path), 0o444); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < containerid.RecheckAfter/2 {
		again, err = id.Recheck(ctx, pid, told)
		wantID(t, again.Container, err, id1)
	}
	time.Sleep(time.Until(start.Add(containerid.RecheckAfter)))
	_, err = id.Recheck(ctx, pid, told)
	wantErr(t, err, containerid.ErrNotRuntimeMade, "owned by uid 65534")

	// A process that is gone is not taken as told.
	if err := os.RemoveAll(filepath.Dir(cgroupFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := id.Recheck(ctx, pid, again); err == nil {
		t.Error("a process whose cgroup file is gone was taken as told")
	}
}
