package main

import (
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// The benchmarks that measure tail latency or the server's CPU (pinLoad:
// GetEventlog, its metrics twin, concurrent records) keep their clients
// from distorting it. Every server process they start (ours and the
// floor) runs on CPU 0, and their clients, in this process, on the other
// CPUs: sharing the 2 cores of the project's machine, the clients' and the
// server's threads preempt each other, and the tail measured is the
// kernel's time slice (unpinned, the floor's p99 at 8 clients is 2.4-2.9
// ms, the same as the server's). And this process collects its garbage
// less often (GOGC 400): its pauses are in every latency it measures, and
// were the rest of the tail (p99 2.2-2.6 ms for the floor and the server
// alike at GOGC 100, 1.1 ms at 400; the servers' own GOGC changed
// nothing). BENCHMARKS.md has the numbers. Throughput benchmarks that
// compare CPU-heavy replies with the floor are left unpinned: on one core
// the server would have half the machine the floor's replies need none of.

// pinned is set while a benchmark that called pinLoad runs; benchmarks run
// one at a time.
var pinned bool

// pinLoad moves this process's threads (the clients) to every CPU it may
// use but CPU 0 and raises its GOGC, until b ends; servers started
// meanwhile run on CPU 0 (serverCommand). It does nothing with fewer than
// 2 CPUs, without CPU 0, without taskset, or with BENCH_PIN=0.
func pinLoad(b *testing.B) {
	var cpus unix.CPUSet
	if os.Getenv("BENCH_PIN") == "0" || unix.SchedGetaffinity(0, &cpus) != nil || cpus.Count() < 2 || !cpus.IsSet(0) {
		return
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		b.Logf("no taskset: clients and servers share every CPU (%v)", err)
		return
	}
	clients := cpus
	clients.Clear(0)
	setAffinity(&clients)
	procs := runtime.GOMAXPROCS(clients.Count())
	gc := debug.SetGCPercent(400)
	pinned = true
	b.Cleanup(func() {
		pinned = false
		setAffinity(&cpus)
		runtime.GOMAXPROCS(procs)
		debug.SetGCPercent(gc)
	})
}

// setAffinity sets the CPUs of every thread of this process. Affinity is
// per thread, and a thread made later inherits its maker's: a few passes
// catch those made meanwhile.
func setAffinity(cpus *unix.CPUSet) {
	for range 3 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return
		}
		for _, t := range tasks {
			if tid, err := strconv.Atoi(t.Name()); err == nil {
				unix.SchedSetaffinity(tid, cpus)
			}
		}
	}
}

// serverCommand is the command that runs this binary as a server for tb:
// on CPU 0 while a benchmark has pinned its load.
func serverCommand(tb testing.TB) *exec.Cmd {
	if _, ok := tb.(*testing.B); ok && pinned {
		return exec.Command("taskset", "--cpu-list", "0", os.Args[0])
	}
	return exec.Command(os.Args[0])
}
