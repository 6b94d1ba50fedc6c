package main

import (
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The load benchmarks keep their clients from distorting what they
// measure. Every server process a benchmark starts (ours and the floor)
// runs on CPU 0, and the benchmark's clients, in this process, on the other
// CPUs: sharing the 2 cores of the project's machine, the clients' and the
// server's threads preempt each other, and the tail latency measured is the
// kernel's time slice (unpinned, the floor's p99 at 8 clients is 2.4-2.9 ms,
// the same as the server's). And this process collects its garbage less
// often (GOGC 400): its pauses are in every latency it measures, and were
// the rest of the tail (p99 2.2-2.6 ms for the floor and the server alike
// at GOGC 100, 1.1 ms at 400; the servers' own GOGC changed nothing).
// BENCHMARKS.md has the numbers. Tests are left alone: only benchmarks do
// this; BENCH_PIN=0 in the environment leaves the benchmarks alone too.
var (
	pinOnce sync.Once
	pinned  bool
)

// serverCommand is the command that runs this binary as a server for tb:
// on CPU 0 under a benchmark, once pinClients has moved this process off it.
func serverCommand(tb testing.TB) *exec.Cmd {
	if _, ok := tb.(*testing.B); ok && pinClients() {
		return exec.Command("taskset", "--cpu-list", "0", os.Args[0])
	}
	return exec.Command(os.Args[0])
}

// pinClients moves this process's threads (the clients of the benchmarks)
// to every CPU it may use but CPU 0, and raises its GOGC, once. It does
// nothing with fewer than 2 CPUs, without CPU 0, without taskset to start
// the servers on CPU 0, or with BENCH_PIN=0.
func pinClients() bool {
	pinOnce.Do(func() {
		if os.Getenv("BENCH_PIN") == "0" {
			return
		}
		var cpus unix.CPUSet
		if err := unix.SchedGetaffinity(0, &cpus); err != nil || cpus.Count() < 2 || !cpus.IsSet(0) {
			return
		}
		if _, err := exec.LookPath("taskset"); err != nil {
			return
		}
		cpus.Clear(0)
		// Affinity is per thread; a thread made later inherits its
		// maker's, so a few passes catch those made meanwhile.
		for range 3 {
			tasks, err := os.ReadDir("/proc/self/task")
			if err != nil {
				return
			}
			for _, t := range tasks {
				if tid, err := strconv.Atoi(t.Name()); err == nil {
					unix.SchedSetaffinity(tid, &cpus)
				}
			}
		}
		runtime.GOMAXPROCS(cpus.Count())
		debug.SetGCPercent(400)
		pinned = true
	})
	return pinned
}
