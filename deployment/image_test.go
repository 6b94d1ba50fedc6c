package deployment

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
	pb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// The image tests run the image as the chart does, with the host directories
// bind-mounted from a temporary directory, and call the server through the
// socket from here. They need dockerd; without it they are skipped, saying so.
//
// EVENTLOG_TEST_IMAGE names an image to test (e.g. the one `make image` just
// built); otherwise the test builds one with the same script, tagged testImageTag.

const (
	testImageTag = "ccnp-eventlog-server:test"
	// The server's uid in the image, which owns what it writes.
	serverUID = 1000
	// Where the chart mounts the host directories in the container.
	ctrSocketDir = "/run/ccnp/uds"
	ctrOutputDir = "/run/ccnp-eventlog"
)

func TestImage(t *testing.T) {
	image := imageUnderTest(t)

	// A scratch image has no dynamic loader: the binary running at all
	// proves it is static.
	if out, err := docker("run", "--rm", image, "help"); err != nil || !strings.Contains(out, "stage") || !strings.Contains(out, "probe") {
		t.Fatalf("the image's binary does not run: %v\n%s", err, out)
	}

	t.Run("SimulatedHardware", func(t *testing.T) { testSimulatedHardware(t, image) })
	t.Run("StagedHostLogs", func(t *testing.T) { testStagedHostLogs(t, image) })
	t.Run("UpstreamPodShape", func(t *testing.T) { testUpstreamPodShape(t, image) })
	t.Run("IMAList", func(t *testing.T) { testIMAList(t, image) })
}

// testSimulatedHardware: `docker run ... --hwsource=simulated` serves both
// logs through a socket on the host, and the files land in a host directory.
func testSimulatedHardware(t *testing.T, image string) {
	sockDir, outDir := serverDir(t), serverDir(t)
	name := startContainer(t, image, []string{
		"-v", sockDir + ":" + ctrSocketDir,
		"-v", outDir + ":" + ctrOutputDir,
	}, "--hwsource=simulated")
	sock := filepath.Join(sockDir, "eventlog.sock")
	conn := waitServing(t, name, sock)

	// The socket accepts any uid, as client pods run with their own.
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o666 || fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("socket %s: %v %v, want a socket with mode 0666", sock, fi.Mode(), err)
	}
	// The built-in probe, as the kubelet runs it.
	if out, err := docker("exec", name, serverBinary, "probe", "--socket="+ctrSocketDir+"/eventlog.sock"); err != nil || !strings.Contains(out, "SERVING") {
		t.Errorf("probe in the container: %v\n%s", err, out)
	}

	client := pb.NewEventlogClient(conn)
	for _, cat := range []pb.CATEGORY{pb.CATEGORY_TDX_EVENTLOG, pb.CATEGORY_TPM_EVENTLOG} {
		t.Run(cat.String(), func(t *testing.T) {
			// CCNP JSON, the whole log.
			reply, data := getEventlog(t, client, outDir, &pb.GetEventlogRequest{EventlogCategory: cat})
			if !reply.Simulated {
				t.Errorf("reply does not say the log is simulated: %v", reply)
			}
			var doc struct {
				Header    map[string]any
				EventLogs []map[string]any
			}
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatalf("%s: %v", reply.EventlogDataLoc, err)
			}
			if doc.Header == nil || len(doc.EventLogs) == 0 || len(doc.EventLogs) != int(reply.EventCount) || reply.EventCount != reply.TotalEvents {
				t.Fatalf("JSON file: header %v, %d events; reply says %d of %d", doc.Header != nil, len(doc.EventLogs), reply.EventCount, reply.TotalEvents)
			}
			register := map[pb.CATEGORY]string{pb.CATEGORY_TDX_EVENTLOG: "Rtmr", pb.CATEGORY_TPM_EVENTLOG: "Pcr"}[cat]
			for i, e := range doc.EventLogs {
				if _, ok := e[register]; !ok {
					t.Fatalf("event %d has no %q: %v", i+1, register, e)
				}
			}

			// Raw: the whole log, then the upstream docs' example slice,
			// 5 events from the second, which must be the same records.
			_, whole := getEventlog(t, client, outDir, &pb.GetEventlogRequest{EventlogCategory: cat, Format: pb.FORMAT_TCG_RAW})
			full, err := eventlog.Parse(whole)
			if err != nil {
				t.Fatalf("raw log: %v", err)
			}
			reply, part := getEventlog(t, client, outDir, &pb.GetEventlogRequest{EventlogCategory: cat, Format: pb.FORMAT_TCG_RAW, StartPosition: 2, Count: 5})
			slice, err := eventlog.Parse(part)
			if err != nil {
				t.Fatalf("raw slice: %v", err)
			}
			if reply.FirstEvent != 2 || reply.EventCount != 5 || len(slice.Events) != 5 {
				t.Fatalf("slice: reply first %d count %d, file has %d events; want 2, 5, 5", reply.FirstEvent, reply.EventCount, len(slice.Events))
			}
			if !bytes.Equal(slice.Header.Raw, full.Header.Raw) {
				t.Error("slice does not carry the log's header")
			}
			for i, e := range slice.Events {
				if !bytes.Equal(e.Raw, full.Events[1+i].Raw) {
					t.Errorf("slice event %d is not event %d of the log", i+1, 2+i)
				}
			}
		})
	}

	// docker stop sends SIGTERM to the server (PID 1): it stops cleanly and
	// removes its socket.
	if out, err := docker("stop", "--time=10", name); err != nil {
		t.Fatalf("docker stop: %v\n%s", err, out)
	}
	if code, _ := docker("inspect", "--format={{.State.ExitCode}}", name); strings.TrimSpace(code) != "0" {
		t.Errorf("server exited with status %s on SIGTERM, want 0", code)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind after SIGTERM: %v", err)
	}
}

// testStagedHostLogs is the chart's pod in docker, with its security
// settings: `stage` as root with CHOWN and DAC_READ_SEARCH copies root-only
// firmware logs from a host tree into a directory (the pod's emptyDir), then
// the server, unprivileged, serves them byte for byte.
func testStagedHostLogs(t *testing.T, image string) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to lay out root-only host files and clean up what uid 1000 wrote")
	}
	table := corpus.Read(t, "tdx/cos-113-tdx.table.bin")
	area := corpus.Read(t, "tdx/cos-113-tdx.data.bin")
	tpmLog := corpus.Read(t, "tpm/tpm_rhel8-uefi.bin")
	expected := corpus.Expected(t)
	tdxWant, tpmWant := expected["tdx/cos-113-tdx.data.bin"], expected["tpm/tpm_rhel8-uefi.bin"]

	// The host: firmware files as the kernel shows them, root-only. The TPM
	// log belongs to another uid, which root reads only with DAC_READ_SEARCH.
	host := t.TempDir()
	writeHostFile(t, filepath.Join(host, "sys/firmware/acpi/tables/CCEL"), table, 0o400, 0)
	writeHostFile(t, filepath.Join(host, "sys/firmware/acpi/tables/data/CCEL"), area, 0o400, 0)
	writeHostFile(t, filepath.Join(host, "sys/kernel/security/tpm0/binary_bios_measurements"), tpmLog, 0o440, 59)
	// kubelet makes hostPath directories as root, 0755; t.TempDir is 0700.
	sockDir, outDir := t.TempDir(), t.TempDir()
	// An emptyDir is world-writable.
	firmware := t.TempDir()
	if err := os.Chmod(firmware, 0o777); err != nil {
		t.Fatal(err)
	}

	out, err := docker(append([]string{"run", "--rm",
		"--user=0:0", "--cap-drop=ALL", "--cap-add=CHOWN", "--cap-add=DAC_READ_SEARCH",
		"--read-only", "--security-opt=no-new-privileges",
		"-v", filepath.Join(host, "sys/firmware/acpi/tables") + ":/host/sys/firmware/acpi/tables:ro",
		"-v", filepath.Join(host, "sys/kernel/security") + ":/host/sys/kernel/security:ro",
		"-v", firmware + ":/run/firmware",
		"-v", sockDir + ":" + ctrSocketDir,
		"-v", outDir + ":" + ctrOutputDir,
		image},
		"stage", "--from=/host", "--to=/run/firmware", "--uid=1000", "--gid=1000",
		"--own-dir="+ctrOutputDir, "--own-dir="+ctrSocketDir)...)
	if err != nil {
		t.Fatalf("stage: %v\n%s", err, out)
	}
	t.Logf("stage:\n%s", out)
	for _, dir := range []string{sockDir, outDir} {
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 || fileUID(fi) != serverUID {
			t.Errorf("stage did not give %s to uid %d with mode 0755: %v", dir, serverUID, fi.Mode())
		}
	}

	name := startContainer(t, image, []string{
		"--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges",
		"-v", firmware + ":/run/firmware:ro",
		"-v", sockDir + ":" + ctrSocketDir,
		"-v", outDir + ":" + ctrOutputDir,
	}, "--hwsource=host", "--root=/", "--socket="+ctrSocketDir+"/eventlog.sock", "--output-dir="+ctrOutputDir)
	client := pb.NewEventlogClient(waitServing(t, name, filepath.Join(sockDir, "eventlog.sock")))

	for _, tt := range []struct {
		cat    pb.CATEGORY
		events int
		log    []byte // the log's bytes, padding excluded
	}{
		{pb.CATEGORY_TDX_EVENTLOG, tdxWant.EventsInclHeader - 1, area[:tdxWant.UsedBytes]},
		{pb.CATEGORY_TPM_EVENTLOG, tpmWant.EventsInclHeader - 1, tpmLog},
	} {
		reply, data := getEventlog(t, client, outDir, &pb.GetEventlogRequest{EventlogCategory: tt.cat, Format: pb.FORMAT_TCG_RAW})
		if reply.Simulated || !strings.Contains(reply.Source, "/run/firmware/") {
			t.Errorf("%s: source %q simulated %v, want the staged copy under /run/firmware", tt.cat, reply.Source, reply.Simulated)
		}
		if int(reply.TotalEvents) != tt.events || int(reply.EventCount) != tt.events {
			t.Errorf("%s: %d of %d events, want all %d", tt.cat, reply.EventCount, reply.TotalEvents, tt.events)
		}
		if !bytes.Equal(data, tt.log) {
			t.Errorf("%s: the raw file (%d bytes) is not the host's log (%d bytes)", tt.cat, len(data), len(tt.log))
		}
	}
}

// testUpstreamPodShape runs the image as upstream's manifests and chart run
// theirs: no arguments (the image's defaults), the CCEL copies their init
// container stages under /run/firmware/acpi/tables, and exec probes running
// /usr/bin/grpc_health_probe -addr=unix:/run/ccnp/uds/eventlog.sock, which
// must pass.
func testUpstreamPodShape(t *testing.T, image string) {
	root := repoRoot(t)
	table := readBytes(t, filepath.Join(root, "eventlog/testdata/corpus/tdx/cos-113-tdx.table.bin"))
	area := readBytes(t, filepath.Join(root, "eventlog/testdata/corpus/tdx/cos-113-tdx.data.bin"))
	// What upstream's busybox init container leaves: the copies, readable
	// by uid 1000, and the host directories given to it.
	tables := t.TempDir()
	writeHostFile(t, filepath.Join(tables, "CCEL"), table, 0o444, serverUID)
	writeHostFile(t, filepath.Join(tables, "data", "CCEL"), area, 0o444, serverUID)
	os.Chmod(tables, 0o755)
	sockDir, outDir := serverDir(t), serverDir(t)
	name := startContainer(t, image, []string{
		"-v", sockDir + ":" + ctrSocketDir,
		"-v", outDir + ":" + ctrOutputDir,
		"-v", tables + ":/run/firmware/acpi/tables:ro",
	})
	client := pb.NewEventlogClient(waitServing(t, name, filepath.Join(sockDir, "eventlog.sock")))

	for _, tc := range []struct {
		addr string
		code int
		want string
	}{
		{"unix:" + ctrSocketDir + "/eventlog.sock", 0, "status: SERVING"}, // upstream's manifests
		{"unix://" + ctrSocketDir + "/eventlog.sock", 0, "status: SERVING"},
		{"unix://" + ctrSocketDir + "/missing.sock", 2, "no such file or directory"},
	} {
		out, err := docker("exec", name, "/usr/bin/grpc_health_probe", "-addr="+tc.addr)
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("grpc_health_probe -addr=%s in the container: exit %d, want %d saying %q:\n%s", tc.addr, code, tc.code, tc.want, out)
		}
	}
	if out, err := docker("run", "--rm", "--entrypoint=/usr/bin/grpc_health_probe", image, "-version"); err != nil || !strings.Contains(out, "eventlog-server") {
		t.Errorf("/usr/bin/grpc_health_probe -version: %v\n%s", err, out)
	}

	reply, data := getEventlog(t, client, outDir, &pb.GetEventlogRequest{Format: pb.FORMAT_TCG_RAW})
	l, err := eventlog.ParseArea(area)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, l.Raw) || reply.Simulated || reply.Source != "/run/firmware/acpi/tables/data/CCEL" {
		t.Errorf("TDX log: %d bytes from %q (simulated %v); want the staged copy's %d bytes", len(data), reply.Source, reply.Simulated, len(l.Raw))
	}
}

// imageUnderTest returns the image to test, building it if need be, or skips
// the test when docker cannot run it here.
func imageUnderTest(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped with -short: builds and runs the container image")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("skipped: no docker CLI on this machine, the image is not tested")
	}
	if out, err := docker("info", "--format={{.ServerVersion}}"); err != nil {
		t.Skipf("skipped: dockerd does not answer, the image is not tested (%v: %s)", err, strings.TrimSpace(out))
	}
	if image := os.Getenv("EVENTLOG_TEST_IMAGE"); image != "" {
		if out, err := docker("image", "inspect", image); err != nil {
			t.Fatalf("EVENTLOG_TEST_IMAGE=%s: %v\n%s", image, err, out)
		}
		return image
	}
	cmd := exec.Command(filepath.Join(repoRoot(t), "container/ccnp-eventlog-server/build-image.sh"))
	cmd.Env = append(os.Environ(), "IMAGE="+testImageTag, "BUILD_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-image.sh: %v\n%s", err, out)
	}
	return testImageTag
}

// serverDir makes a host directory the server (uid 1000) can write, as stage
// leaves the chart's host directories.
func serverDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, serverUID, serverUID); err != nil {
			t.Fatal(err)
		}
	} else if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startContainer starts the image detached with the docker options and
// server arguments; on failure the test log gets the server's output, and
// the container is removed at the end.
func startContainer(t *testing.T, image string, opts []string, args ...string) string {
	t.Helper()
	name := fmt.Sprintf("eventlog-server-test-%d", time.Now().UnixNano())
	runArgs := append(append([]string{"run", "--detach", "--name", name}, opts...), image)
	if out, err := docker(append(runArgs, args...)...); err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := docker("logs", name)
			t.Logf("server logs (%s):\n%s", name, logs)
		}
		docker("rm", "--force", "--volumes", name)
	})
	return name
}

// waitServing waits until the server answers its health check on the socket.
func waitServing(t *testing.T, name, sock string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
			return conn
		}
		if running, _ := docker("inspect", "--format={{.State.Running}}", name); strings.TrimSpace(running) != "true" {
			t.Fatalf("the server's container stopped before serving on %s", sock)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SERVING health on %s after 60s: %v %v", sock, resp, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// getEventlog calls GetEventlog and reads the returned file through the
// host's output directory, checking what every reply promises about it.
func getEventlog(t *testing.T, client pb.EventlogClient, outDir string, req *pb.GetEventlogRequest) (*pb.GetEventlogReply, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reply, err := client.GetEventlog(ctx, req)
	if err != nil {
		t.Fatalf("GetEventlog(%v): %v", req, err)
	}
	rel, ok := strings.CutPrefix(reply.EventlogDataLoc, ctrOutputDir+"/")
	if !ok {
		t.Fatalf("eventlog_data_loc %q is not under %s", reply.EventlogDataLoc, ctrOutputDir)
	}
	path := filepath.Join(outDir, rel)
	data := readBytes(t, path)
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != reply.Sha256 {
		t.Errorf("%s: content does not match the reply's sha256", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Written by the server, readable by client pods of any uid.
	if fileUID(fi) != serverUID || fi.Mode().Perm()&0o004 == 0 {
		t.Errorf("%s: owner %d mode %v, want the server's uid %d and world-readable", path, fileUID(fi), fi.Mode(), serverUID)
	}
	return reply, data
}

func writeHostFile(t *testing.T, path string, data []byte, mode fs.FileMode, uid int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(path, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fileUID(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// docker runs the docker CLI and returns its combined output.
func docker(args ...string) (string, error) {
	out, err := exec.Command("docker", args...).CombinedOutput()
	return string(out), err
}
