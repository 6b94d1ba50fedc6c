package service_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ccel"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/unixsock"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
	"github.com/ccnp-eventlog/ccnp-eventlog/service"
)

const corpus = "../eventlog/testdata/corpus"

// hostTree is a fake host root holding real corpus logs where the real
// backends look for them.
type hostTree struct {
	root string
	tdx  string // path of the CCEL log area
	tpm  string // path of binary_bios_measurements
}

func newHostTree(t *testing.T, tdxName, tpmName string) hostTree {
	t.Helper()
	root := t.TempDir()
	h := hostTree{
		root: root,
		tdx:  filepath.Join(root, hwsource.CCELDataPath),
		tpm:  filepath.Join(root, "sys/kernel/security/tpm0/binary_bios_measurements"),
	}
	if tdxName != "" {
		copyFile(t, filepath.Join(corpus, "tdx", tdxName+".table.bin"), filepath.Join(root, hwsource.CCELTablePath))
		copyFile(t, filepath.Join(corpus, "tdx", tdxName+".data.bin"), h.tdx)
	}
	if tpmName != "" {
		copyFile(t, filepath.Join(corpus, "tpm", tpmName), h.tpm)
	}
	return h
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o444); err != nil {
		t.Fatal(err)
	}
}

// server is a Service on a real Unix socket, with a client.
type server struct {
	svc    *service.Service
	socket string
	outDir string
	client eventlogpb.EventlogClient
	health healthpb.HealthClient
}

func start(t *testing.T, root string, limits *outdir.Limits, options ...func(*service.Options)) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{socket: filepath.Join(dir, "uds", "eventlog.sock"), outDir: filepath.Join(dir, "out")}
	l := outdir.Limits{MaxBytes: 16 << 20, MaxAge: time.Hour, MinLifetime: time.Minute}
	if limits != nil {
		l = *limits
	}
	srcs := map[eventlogpb.CATEGORY]hwsource.Source{
		eventlogpb.CATEGORY_TDX_EVENTLOG: hwsource.NewTDX(root),
		eventlogpb.CATEGORY_TPM_EVENTLOG: hwsource.NewTPM(root),
	}
	opts := service.Options{OutputDir: s.outDir, Limits: l, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range options {
		o(&opts)
	}
	svc, err := service.New(srcs, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.svc = svc
	lis, err := unixsock.Listen(s.socket, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	g, hs := svc.NewGRPCServer()
	ctx, cancel := context.WithCancel(context.Background())
	go svc.WatchHealth(ctx, hs, 50*time.Millisecond)
	go g.Serve(lis)
	t.Cleanup(func() { cancel(); g.Stop() })
	conn, err := grpc.NewClient("unix://"+s.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s.client = eventlogpb.NewEventlogClient(conn)
	s.health = healthpb.NewHealthClient(conn)
	return s
}

func (s *server) get(t *testing.T, req *eventlogpb.GetEventlogRequest) (*eventlogpb.GetEventlogReply, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.client.GetEventlog(ctx, req)
}

// ccnpFile is the part of the CCNP JSON file the tests check.
type ccnpFile struct {
	Header struct {
		HeaderData []byte
		EventNum   int
	}
	EventLogs []struct {
		Rtmr       *uint32
		Pcr        *uint32
		Etype      uint32
		Data       []byte
		EventNum   int
		Register   string
		DigestsHex map[string]string
	}
	TotalEvents int
}

func readJSON(t *testing.T, path string) ccnpFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f ccnpFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

func parseCorpus(t *testing.T, path string, area bool) *eventlog.Log {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	parse := eventlog.Parse
	if area {
		parse = eventlog.ParseArea
	}
	l, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func wantCode(t *testing.T, err error, code codes.Code, msgParts ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("got %v, want code %s", err, code)
	}
	for _, p := range msgParts {
		if !strings.Contains(st.Message(), p) {
			t.Errorf("message %q does not mention %q", st.Message(), p)
		}
	}
}

func TestUpstreamRequestsReturnTheRightEvents(t *testing.T) {
	h := newHostTree(t, "cos-113-tdx", "tpm_rhel8-uefi.bin")
	s := start(t, h.root, nil)
	for _, tc := range []struct {
		cat  eventlogpb.CATEGORY
		log  *eventlog.Log
		kind eventlog.Kind
		path string
	}{
		{eventlogpb.CATEGORY_TDX_EVENTLOG, parseCorpus(t, h.tdx, true), eventlog.TDX, h.tdx},
		{eventlogpb.CATEGORY_TPM_EVENTLOG, parseCorpus(t, h.tpm, false), eventlog.TPM, h.tpm},
	} {
		t.Run(tc.cat.String(), func(t *testing.T) {
			n := len(tc.log.Events)
			for _, p := range []struct{ start, count, first, last int32 }{
				{0, 0, 1, int32(n)},                        // the whole log
				{1, 0, 1, int32(n)},                        // 1 means the first, too
				{2, 5, 2, 6},                               // upstream docs: 5 events from the second
				{int32(n), 0, int32(n), int32(n)},          // the last event
				{int32(n) - 2, 10, int32(n) - 2, int32(n)}, // past the end: the rest
			} {
				r, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: tc.cat, StartPosition: p.start, Count: p.count})
				if err != nil {
					t.Fatalf("start %d count %d: %v", p.start, p.count, err)
				}
				if !strings.HasPrefix(r.EventlogDataLoc, s.outDir+"/") {
					t.Errorf("file %s is not under the output dir %s", r.EventlogDataLoc, s.outDir)
				}
				f := readJSON(t, r.EventlogDataLoc)
				if want := int(p.last - p.first + 1); len(f.EventLogs) != want || int(r.EventCount) != want {
					t.Fatalf("start %d count %d: file has %d events, reply says %d, want %d", p.start, p.count, len(f.EventLogs), r.EventCount, want)
				}
				if int(r.TotalEvents) != n || f.TotalEvents != n || r.FirstEvent != uint32(p.first) {
					t.Errorf("reply total %d first %d, file total %d; want %d, %d", r.TotalEvents, r.FirstEvent, f.TotalEvents, n, p.first)
				}
				if string(f.Header.HeaderData) != string(tc.log.Header.Raw) {
					t.Error("the file does not carry the Spec ID header")
				}
				for i, e := range f.EventLogs {
					want := tc.log.Events[int(p.first)-1+i]
					if e.EventNum != want.Num || string(e.Data) != string(want.Raw) {
						t.Fatalf("event %d of the file is event %d, want %d", i, e.EventNum, want.Num)
					}
					if tc.kind == eventlog.TDX && (e.Rtmr == nil || *e.Rtmr != want.Index-1 || e.Pcr != nil) {
						t.Errorf("event %d: Rtmr %v, want %d (CC MR index - 1)", want.Num, e.Rtmr, want.Index-1)
					}
					if tc.kind == eventlog.TPM && (e.Pcr == nil || *e.Pcr != want.Index || e.Rtmr != nil) {
						t.Errorf("event %d: Pcr %v, want %d", want.Num, e.Pcr, want.Index)
					}
				}
				content, _ := os.ReadFile(r.EventlogDataLoc)
				if sum := sha256.Sum256(content); r.Sha256 != hex.EncodeToString(sum[:]) {
					t.Errorf("reply sha256 %s does not match the file", r.Sha256)
				}
				if r.Simulated || r.Source != tc.path {
					t.Errorf("reply source %q simulated %v: want the file read, %s", r.Source, r.Simulated, tc.path)
				}
			}
		})
	}
}

func TestRawFormatIsTheSourceBytes(t *testing.T) {
	h := newHostTree(t, "ovmf-64k", "gdc-host.bin")
	s := start(t, h.root, nil)
	for cat, l := range map[eventlogpb.CATEGORY]*eventlog.Log{
		eventlogpb.CATEGORY_TDX_EVENTLOG: parseCorpus(t, h.tdx, true),
		eventlogpb.CATEGORY_TPM_EVENTLOG: parseCorpus(t, h.tpm, false),
	} {
		full, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: cat, Format: eventlogpb.FORMAT_TCG_RAW})
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(full.EventlogDataLoc); string(b) != string(l.Raw) {
			t.Errorf("%s: raw file of the whole log is not the log's bytes (%d vs %d bytes)", cat, len(b), len(l.Raw))
		}
		part, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: cat, Format: eventlogpb.FORMAT_TCG_RAW, StartPosition: 2, Count: 5})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(part.EventlogDataLoc)
		want := string(l.Header.Raw) + string(l.Raw[l.Events[1].Offset:l.Events[6].Offset])
		if string(b) != want {
			t.Errorf("%s: raw slice 2..6 is not header + events 2..6", cat)
		}
		if part.Format != eventlogpb.FORMAT_TCG_RAW || !strings.HasSuffix(part.EventlogDataLoc, ".bin") {
			t.Errorf("%s: reply format %s, file %s", cat, part.Format, part.EventlogDataLoc)
		}
	}
}

func TestSameRequestSameFile(t *testing.T) {
	h := newHostTree(t, "cos-113-tdx", "")
	s := start(t, h.root, nil)
	a, err := s.get(t, &eventlogpb.GetEventlogRequest{StartPosition: 0, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.get(t, &eventlogpb.GetEventlogRequest{StartPosition: 1, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if a.EventlogDataLoc != b.EventlogDataLoc || a.Sha256 != b.Sha256 {
		t.Errorf("start 0 and start 1 gave different files: %s, %s", a.EventlogDataLoc, b.EventlogDataLoc)
	}
	// A file removed behind the server's back is written again.
	if err := os.Remove(a.EventlogDataLoc); err != nil {
		t.Fatal(err)
	}
	c, err := s.get(t, &eventlogpb.GetEventlogRequest{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.EventlogDataLoc); err != nil || c.Sha256 != a.Sha256 {
		t.Errorf("after removal: %v, sha256 %s want %s", err, c.Sha256, a.Sha256)
	}
}

func TestErrors(t *testing.T) {
	h := newHostTree(t, "ovmf-64k", "") // no TPM log on this node
	s := start(t, h.root, nil)
	n := len(parseCorpus(t, h.tdx, true).Events)

	_, err := s.get(t, &eventlogpb.GetEventlogRequest{StartPosition: int32(n) + 1})
	wantCode(t, err, codes.OutOfRange, fmt.Sprintf("has %d events", n))
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{StartPosition: -1})
	wantCode(t, err, codes.InvalidArgument, "start_position (-1)")
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{Count: -5})
	wantCode(t, err, codes.InvalidArgument, "count (-5)")
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{EventlogLevel: 7})
	wantCode(t, err, codes.InvalidArgument, "eventlog_level 7")
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: 9})
	wantCode(t, err, codes.InvalidArgument, "eventlog_category 9")
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{Format: 3})
	wantCode(t, err, codes.InvalidArgument, "format 3")
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{EventlogLevel: eventlogpb.LEVEL_SAAS})
	// Outside a container, or (when the tests run in one) with no state directory.
	wantCode(t, err, codes.FailedPrecondition, "container-level")
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG})
	wantCode(t, err, codes.FailedPrecondition, h.tpm)
}

func TestMalformedLogIsDataLoss(t *testing.T) {
	h := newHostTree(t, "", "tpm_arch-linux-workstation.bin")
	b, _ := os.ReadFile(h.tpm)
	l := parseCorpus(t, h.tpm, false)
	bad := l.Events[4] // give event 5 a size far past the end of the log
	os.Chmod(h.tpm, 0o644)
	b = b[:bad.Offset+len(bad.Raw)-len(bad.Data)-4]
	b = append(b, 0xff, 0xff, 0, 0)
	if err := os.WriteFile(h.tpm, b, 0o444); err != nil {
		t.Fatal(err)
	}
	s := start(t, h.root, nil)
	_, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG})
	wantCode(t, err, codes.DataLoss, "event 5", fmt.Sprintf("byte offset %d", bad.Offset), h.tpm)
}

func TestFullOutputDirIsResourceExhausted(t *testing.T) {
	h := newHostTree(t, "cos-113-tdx", "")
	// Room for about two slices; files stay at least an hour.
	s := start(t, h.root, &outdir.Limits{MaxBytes: 12 << 10, MaxAge: 2 * time.Hour, MinLifetime: time.Hour})
	var kept []string
	for i := int32(1); ; i++ {
		r, err := s.get(t, &eventlogpb.GetEventlogRequest{StartPosition: i, Count: 2})
		if err != nil {
			wantCode(t, err, codes.ResourceExhausted, "output directory full", s.outDir)
			break
		}
		kept = append(kept, r.EventlogDataLoc)
		if i > 40 {
			t.Fatal("the size limit never held")
		}
	}
	if len(kept) == 0 {
		t.Fatal("no file fitted at all")
	}
	for _, p := range kept { // every path handed out is still readable
		if _, err := os.Stat(p); err != nil {
			t.Errorf("a file younger than its minimum lifetime was removed: %v", err)
		}
	}
	// A file already handed out is still handed out, full or not.
	if _, err := s.get(t, &eventlogpb.GetEventlogRequest{StartPosition: 1, Count: 2}); err != nil {
		t.Errorf("asking again for a file already written: %v", err)
	}
}

// TestInlineLimit: an inline reply is held whole in memory, so one past
// the limit is refused, before it is built, with what to do instead; a file
// of the same events is written in pieces and has no such limit.
func TestInlineLimit(t *testing.T) {
	h := newHostTree(t, "cos-113-tdx", "")
	svc, err := service.New(map[eventlogpb.CATEGORY]hwsource.Source{eventlogpb.CATEGORY_TDX_EVENTLOG: hwsource.NewTDX(h.root)},
		service.Options{OutputDir: t.TempDir(), Limits: outdir.Limits{MaxBytes: 16 << 20, MaxAge: time.Hour, MinLifetime: time.Minute},
			MaxInlineBytes: 16 << 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, format := range []eventlogpb.FORMAT{eventlogpb.FORMAT_CCNP_JSON, eventlogpb.FORMAT_TCG_RAW} {
		r, err := svc.GetEventlog(ctx, &eventlogpb.GetEventlogRequest{Format: format, Inline: true, StartPosition: 3, Count: 2})
		if err != nil || len(r.EventlogData) == 0 || r.EventCount != 2 {
			t.Fatalf("%v: a small slice inline: %v %v", format, r, err)
		}
		sum := sha256.Sum256(r.EventlogData)
		if r.Sha256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%v: the reply's digest is not its content's", format)
		}
		if format == eventlogpb.FORMAT_TCG_RAW {
			continue // the whole raw log is 18 KB: over the limit too, but just
		}
		_, err = svc.GetEventlog(ctx, &eventlogpb.GetEventlogRequest{Format: format, Inline: true})
		wantCode(t, err, codes.ResourceExhausted, "--max-inline-bytes", "16384", "inline false")
		f, err := svc.GetEventlog(ctx, &eventlogpb.GetEventlogRequest{Format: format})
		if err != nil {
			t.Fatalf("%v: the whole log as a file: %v", format, err)
		}
		b, _ := os.ReadFile(f.EventlogDataLoc)
		sum = sha256.Sum256(b)
		if f.Sha256 != hex.EncodeToString(sum[:]) || len(b) < 16<<10 {
			t.Errorf("%v: the file's %d bytes do not match the reply's digest", format, len(b))
		}
	}
}

// TestLogSizeLimits: a log past the size the host backends read (8 MiB, 8
// times the largest real logs: memory stays bounded whatever is accepted)
// is refused naming the path and the limit; one at the limit is served.
func TestLogSizeLimits(t *testing.T) {
	const limit = 8 << 20
	h := newHostTree(t, "", "")
	event := eventlog.AppendLegacyEvent(nil, 0, eventlog.EvAction, make([]byte, 20), nil)
	write := func(path string, b []byte) {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tpmLog := bytes.Repeat(event, limit/len(event))
	write(h.tpm, tpmLog)
	table := (&ccel.Table{CCType: ccel.TypeTDX, LAML: limit + 1}).Marshal()
	write(filepath.Join(h.root, hwsource.CCELTablePath), table)
	write(h.tdx, bytes.Repeat([]byte{0xFF}, 64))
	s := start(t, h.root, nil)
	r, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG, Format: eventlogpb.FORMAT_TCG_RAW, StartPosition: 1, Count: 1})
	if err != nil || r.TotalEvents != uint32(limit/len(event)-1) {
		t.Fatalf("a log at the limit: %v %v", r, err)
	}
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_TDX_EVENTLOG})
	wantCode(t, err, codes.DataLoss, "LAML", "8388608", filepath.Join(h.root, hwsource.CCELTablePath))

	write(h.tpm, append(tpmLog, event...))
	s = start(t, h.root, nil)
	_, err = s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: eventlogpb.CATEGORY_TPM_EVENTLOG})
	wantCode(t, err, codes.FailedPrecondition, h.tpm, "8388608")
}

func TestUnwritableOutputDirIsInternal(t *testing.T) {
	h := newHostTree(t, "ovmf-64k", "")
	s := start(t, h.root, nil)
	if err := os.RemoveAll(s.outDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.outDir, nil, 0o644); err != nil { // a file where the directory was
		t.Fatal(err)
	}
	_, err := s.get(t, &eventlogpb.GetEventlogRequest{})
	wantCode(t, err, codes.Internal, s.outDir)
}

func TestHealth(t *testing.T) {
	h := newHostTree(t, "ovmf-64k", "")
	s := start(t, h.root, nil)
	waitHealth(t, s, healthpb.HealthCheckResponse_SERVING)

	empty := start(t, t.TempDir(), nil) // a node with neither log
	time.Sleep(200 * time.Millisecond)
	r, err := empty.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("no source works: health %v %v, want NOT_SERVING", r, err)
	}
}

func waitHealth(t *testing.T, s *server, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := s.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "Eventlog"})
		if err == nil && r.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health: %v %v, want %s", r, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConcurrentRequests(t *testing.T) {
	h := newHostTree(t, "cos-113-tdx", "event-bootorder.bin")
	s := start(t, h.root, nil)
	logs := map[eventlogpb.CATEGORY]*eventlog.Log{
		eventlogpb.CATEGORY_TDX_EVENTLOG: parseCorpus(t, h.tdx, true),
		eventlogpb.CATEGORY_TPM_EVENTLOG: parseCorpus(t, h.tpm, false),
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for c := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cat := eventlogpb.CATEGORY(c % 2)
			for i := range 20 {
				start, count := int32(1+(c+i)%30), int32(1+i%7)
				r, err := s.client.GetEventlog(context.Background(), &eventlogpb.GetEventlogRequest{
					EventlogCategory: cat, StartPosition: start, Count: count, Format: eventlogpb.FORMAT(i % 2)})
				if err != nil {
					errs <- err
					return
				}
				b, err := os.ReadFile(r.EventlogDataLoc)
				if err != nil {
					errs <- err
					return
				}
				if r.Format == eventlogpb.FORMAT_TCG_RAW {
					l := logs[cat]
					want := string(l.Header.Raw) + string(l.Raw[l.Events[start-1].Offset:l.Events[start-1+count-1].Offset+len(l.Events[start-1+count-1].Raw)])
					if string(b) != want {
						errs <- fmt.Errorf("%s start %d count %d: wrong content", cat, start, count)
						return
					}
				} else if !json.Valid(b) {
					errs <- errors.New("invalid JSON in " + r.EventlogDataLoc)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
