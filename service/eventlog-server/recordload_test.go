package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// Concurrent containers, each a process of its own: the server tells a
// caller's container from the pid at the other end of the socket, so
// callers in one process would all be one container. Each caller is this
// test binary run again with connectorEnv set to the server's socket: it
// connects, hands the connection to the benchmark over fd 3
// (SCM_RIGHTS), and stays alive (the server checks that the caller still
// runs) until the benchmark closes its end.
const connectorEnv = "EVENTLOG_BENCH_CONNECT"

func runConnector(socket string) int {
	c, err := net.Dial("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := c.(*net.UnixConn).File()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := unix.Sendmsg(3, []byte{0}, unix.UnixRights(int(f.Fd())), nil, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var b [1]byte
	unix.Read(3, b[:]) // until the benchmark is done
	return 0
}

// containerCaller is a caller process and its connection to the server.
type containerCaller struct {
	pid    int
	client eventlogpb.EventlogClient
}

// startCaller starts a caller process connected to socket.
func startCaller(b *testing.B, socket string) containerCaller {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "caller"), os.NewFile(uintptr(fds[1]), "caller")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), connectorEnv+"="+socket)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	theirs.Close()
	b.Cleanup(func() { ours.Close(); cmd.Wait() })
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(ours.Fd()), buf, oob, 0)
	if err != nil {
		b.Fatal(err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		b.Fatalf("no connection from the caller: %v", err)
	}
	rights, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(rights) != 1 {
		b.Fatalf("no connection from the caller: %v", err)
	}
	conn, err := net.FileConn(os.NewFile(uintptr(rights[0]), "conn"))
	if err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	cc, err := grpc.NewClient("passthrough:///caller", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
			var c net.Conn
			once.Do(func() { c = conn })
			if c == nil {
				return nil, fmt.Errorf("the caller's one connection is used")
			}
			return c, nil
		}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	return containerCaller{pid: cmd.Process.Pid, client: eventlogpb.NewEventlogClient(cc)}
}

// fsyncRate is how many appends of size bytes, each followed by
// fdatasync, one caller makes in a second in dir: the most records a
// journal there takes one at a time.
func fsyncRate(b *testing.B, dir string, n, size int) float64 {
	f, err := os.CreateTemp(dir, "fsync-limit")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, size)
	start := time.Now()
	for range n {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkRecordEventConcurrent: records from 1 and 8 containers at once,
// each container a process of its own recording as fast as the server
// answers, on the simulated TD and TPM, with the runtime log on this
// machine's disk (not tmpfs: each group waits for one fdatasync). Each case
// starts a server of its own with an empty runtime log, and records
// min(b.N, 3000) events in all (a record's cost grows with the runtime
// log, which each publishes). Beside it, fsync-limit: appends with one
// fdatasync each, one after the other, in the same directory: what a
// journal without group commit could reach at most.
func BenchmarkRecordEventConcurrent(b *testing.B) {
	pinLoad(b) // the server's CPU per record is what bounds 8 callers: its own core
	top := "/ccnp-eventlog-bench-" + strconv.Itoa(os.Getpid()) + "-c/docker/"
	for c := range 8 {
		makeCgroupV2(b, top+fmt.Sprintf("%064x", c+1))
	}
	for _, cat := range []eventlogpb.CATEGORY{eventlogpb.CATEGORY_TDX_EVENTLOG, eventlogpb.CATEGORY_TPM_EVENTLOG} {
		for _, n := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/containers=%d", categoryLabel(cat), n), func(b *testing.B) {
				proc := b.TempDir()
				state, err := os.MkdirTemp("", "elbench-state") // on disk, not tmpfs
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { os.RemoveAll(state) })
				s := startServer(b, "EVENTLOG_PROC_ROOT="+proc, "EVENTLOG_STATE_DIR="+state, "EVENTLOG_CRI_SOCKET=none",
					"EVENTLOG_SAAS_MAX_EVENTS=1000000", "EVENTLOG_SAAS_MAX_BYTES=67108864", "EVENTLOG_RUNTIME_MAX_BYTES=67108864")
				callers := make([]containerCaller, n)
				for c := range callers {
					callers[c] = startCaller(b, s.socket)
					dir := filepath.Join(proc, strconv.Itoa(callers[c].pid))
					os.MkdirAll(dir, 0o755)
					if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte("0::"+top+fmt.Sprintf("%064x", c+1)+"\n"), 0o644); err != nil {
						b.Fatal(err)
					}
				}
				record := func(c, i int) error {
					_, err := callers[c].client.RecordEvent(context.Background(), &eventlogpb.RecordEventRequest{EventlogCategory: cat, Data: []byte(fmt.Sprintf("container %d measurement %d", c, i))})
					return err
				}
				for c := range callers { // connect, and open the runtime log
					if err := record(c, -1); err != nil {
						b.Fatal(err)
					}
				}
				total := min(b.N, 3000)
				latencies := make([][]time.Duration, n)
				var wg sync.WaitGroup
				cpu0 := s.cpuTime(b)
				b.ResetTimer()
				start := time.Now()
				for c := range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := c; i < total; i += n {
							t := time.Now()
							if err := record(c, i); err != nil {
								b.Error(err)
								return
							}
							latencies[c] = append(latencies[c], time.Since(t))
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				cpu := s.cpuTime(b) - cpu0
				all := slices.Concat(latencies...)
				slices.Sort(all)
				b.ReportMetric(float64(len(all))/elapsed.Seconds(), "rec/s")
				b.ReportMetric(ms(all[len(all)/2]), "p50-ms")
				b.ReportMetric(ms(all[len(all)*99/100]), "p99-ms")
				b.ReportMetric(cpu*1000/float64(len(all)), "server-cpu-ms/rec")
				b.ReportMetric(fsyncRate(b, state, min(total, 1000), 200), "fsync-limit/s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

func categoryLabel(c eventlogpb.CATEGORY) string {
	if c == eventlogpb.CATEGORY_TPM_EVENTLOG {
		return "tpm"
	}
	return "tdx"
}
