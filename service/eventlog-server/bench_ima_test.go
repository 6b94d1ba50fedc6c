package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// The IMA benchmarks serve a list of ima-ng entries written to a fake host
// tree (on tmpfs, as securityfs is memory), through the real backend.

// floorServerEnv makes the test binary a floor server: a gRPC server on
// the socket it names that answers every GetEventlog with one fixed reply
// and does nothing else (no logging, no peer credentials, no reading):
// what serving costs before the service does any work.
const floorServerEnv = "EVENTLOG_BENCH_FLOOR_SOCKET"

// floorInlineEnv sets the size of the floor's inline content; unset, its
// reply names a file, as a reply delivered in a file does.
const floorInlineEnv = "EVENTLOG_BENCH_FLOOR_INLINE"

type floorServer struct {
	eventlogpb.UnimplementedEventlogServer
	reply *eventlogpb.GetEventlogReply
}

func (f *floorServer) GetEventlog(context.Context, *eventlogpb.GetEventlogRequest) (*eventlogpb.GetEventlogReply, error) {
	return f.reply, nil
}

// serveFloor runs the floor server until it is killed.
func serveFloor(socket string) int {
	reply := &eventlogpb.GetEventlogReply{
		EventlogDataLoc: "/dev/shm/elbench000000000/out/ima-50000-50099-0123456789abcdef0123456789abcdef.bin",
		EventCount:      100, TotalEvents: 100_000, FirstEvent: 50_000,
		Sha256: strings.Repeat("ab", 32), Source: "/dev/shm/elbench000000000/tree/" + hwsource.IMAListPath,
	}
	if n, err := strconv.Atoi(os.Getenv(floorInlineEnv)); err == nil {
		reply.EventlogDataLoc, reply.EventlogData = "", make([]byte, n)
	}
	if f := os.Getenv(floorReplyEnv); f != "" {
		r, err := readFloorReply(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		reply = r
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	g := grpc.NewServer()
	eventlogpb.RegisterEventlogServer(g, &floorServer{reply: reply})
	if err := g.Serve(l); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startFloor starts a floor server process and waits until it answers.
func startFloor(b *testing.B, inline int) *serverProcess {
	return startFloorProcess(b, func(cmd *exec.Cmd) {
		if inline > 0 {
			cmd.Env = append(cmd.Env, floorInlineEnv+"="+strconv.Itoa(inline))
		}
	})
}

// startFloorProcess starts a floor server process, its command set up by
// setup, and waits until it answers.
func startFloorProcess(b *testing.B, setup func(*exec.Cmd)) *serverProcess {
	b.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "elfloor")
	if err != nil {
		dir = b.TempDir()
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	s := &serverProcess{socket: filepath.Join(dir, "floor.sock")}
	s.cmd = serverCommand(b)
	s.cmd.Env = append(os.Environ(), floorServerEnv+"="+s.socket)
	setup(s.cmd)
	if err := s.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	client := s.clients(b, 1)[0]
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.GetEventlog(ctx, &eventlogpb.GetEventlogRequest{})
		cancel()
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			b.Fatalf("the floor server did not answer within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// imaBenchEntries returns n ima-ng entries, numbered from first: about 136
// bytes each, as a real list's.
func imaBenchEntries(b testing.TB, first, n int) []byte {
	o := binary.LittleEndian
	out := make([]byte, 0, n*140)
	for i := first; i < first+n; i++ {
		name := fmt.Sprintf("/usr/lib/x86_64-linux-gnu/libbench-%07d.so", i)
		d := sha256.Sum256([]byte(name))
		var err error
		if out, err = ima.AppendEntry(out, o, eventlog.AlgSHA1, 10, "ima-ng", ima.NgData(o, "sha256", d[:], name)); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// imaTree writes a host tree holding only an IMA list and returns the
// tree and the list's path.
func imaTree(b testing.TB, list []byte) (root, path string) {
	root, err := os.MkdirTemp("/dev/shm", "elimatree")
	if err != nil {
		root = b.TempDir()
	}
	b.Cleanup(func() { os.RemoveAll(root) })
	path = filepath.Join(root, hwsource.IMAListPath)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, list, 0o444); err != nil {
		b.Fatal(err)
	}
	return root, path
}

func startIMAServer(b *testing.B, root string, env ...string) *serverProcess {
	return startServer(b, append([]string{"EVENTLOG_HWSOURCE=host", "EVENTLOG_ROOT=" + root, "EVENTLOG_IMA_MAX_BYTES=1073741824"}, env...)...)
}

const imaBenchLen = 100_000

// BenchmarkIMASlice: a 100-entry slice of a 100,000-entry list, in a file
// (raw) and inline (JSON), with 1 and 8 clients, served by the server and
// by the floor (a fixed reply of the same size, no work). The server
// checks the list for growth on every request.
func BenchmarkIMASlice(b *testing.B) {
	root, _ := imaTree(b, imaBenchEntries(b, 1, imaBenchLen))
	s := startIMAServer(b, root)
	for _, mode := range []struct {
		name   string
		format eventlogpb.FORMAT
		inline bool
	}{{"raw-file", eventlogpb.FORMAT_TCG_RAW, false}, {"json-inline", eventlogpb.FORMAT_CCNP_JSON, true}} {
		req := &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_IMA_EVENTLOG, StartPosition: 50_000, Count: 100, Format: mode.format, Inline: mode.inline}
		reply, err := s.clients(b, 1)[0].GetEventlog(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		if reply.EventCount != 100 || reply.TotalEvents != imaBenchLen {
			b.Fatalf("%d of %d entries", reply.EventCount, reply.TotalEvents)
		}
		floor := startFloor(b, len(reply.EventlogData))
		for _, srv := range []struct {
			name string
			s    *serverProcess
		}{{"server", s}, {"floor", floor}} {
			for _, n := range []int{1, 8} {
				b.Run(fmt.Sprintf("%s/%s/clients=%d", mode.name, srv.name, n), func(b *testing.B) {
					load(b, srv.s.clients(b, n), func(int, int) *eventlogpb.GetEventlogRequest { return req })
				})
			}
		}
	}
}

// BenchmarkIMAAppend: 1,000 entries appended to a list of 100,000 (the
// write untimed: it is the kernel's), then the request that returns the
// last of them: the time for the server to read, parse and serve what was
// appended. Past 256 MiB the list is replaced by the first 100,000 entries
// again (untimed), and read once.
func BenchmarkIMAAppend(b *testing.B) {
	base := imaBenchEntries(b, 1, imaBenchLen)
	root, path := imaTree(b, base)
	s := startIMAServer(b, root)
	client := s.clients(b, 1)[0]
	block := imaBenchEntries(b, imaBenchLen+1, 1000)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { f.Close() }()
	total, size := imaBenchLen, len(base)
	get := func() *eventlogpb.GetEventlogReply {
		r, err := client.GetEventlog(context.Background(), &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_IMA_EVENTLOG, StartPosition: int32(total), Count: 1})
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	get()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if size > 256<<20 {
			f.Close()
			if err := os.WriteFile(path+".new", base, 0o444); err != nil {
				b.Fatal(err)
			}
			if err := os.Rename(path+".new", path); err != nil {
				b.Fatal(err)
			}
			if f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
				b.Fatal(err)
			}
			total, size = imaBenchLen, len(base)
			get()
		}
		if _, err := f.Write(block); err != nil {
			b.Fatal(err)
		}
		total, size = total+1000, size+len(block)
		b.StartTimer()
		if r := get(); r.TotalEvents != uint32(total) || r.FirstEvent != uint32(total) {
			b.Fatalf("after 1,000 appended: entry %d of %d, want %d", r.FirstEvent, r.TotalEvents, total)
		}
	}
}

// BenchmarkIMAMemoryPerEntry: the server's resident memory holding a
// 100,000-entry list, less that of one holding 1 entry, per entry.
func BenchmarkIMAMemoryPerEntry(b *testing.B) {
	rss := func(n int) int64 {
		root, _ := imaTree(b, imaBenchEntries(b, 1, n))
		s := startIMAServer(b, root)
		r, err := s.clients(b, 1)[0].GetEventlog(context.Background(), &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_IMA_EVENTLOG, StartPosition: int32(n), Count: 1})
		if err != nil || r.TotalEvents != uint32(n) {
			b.Fatalf("%v, %v", r, err)
		}
		return s.currentRSS(b)
	}
	for range b.N {
		small := rss(1)
		large := rss(imaBenchLen)
		b.ReportMetric(float64(large-small)/(imaBenchLen-1), "B/entry")
		b.ReportMetric(float64(large)/(1<<20), "RSS-MiB")
	}
	b.ReportMetric(0, "ns/op")
}
