package hwsource_test

import (
	"bytes"
	"context"
	"crypto/sha512"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator"
)

const treeBootID = "6f1e9a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"

func sha384(s string) []byte {
	d := sha512.Sum384([]byte(s))
	return d[:]
}

// TestTDXExtendWritesTheKernelABI: the real TDX backend extends an RTMR by
// writing the 48-byte digest, once, at offset 0, to the tdx_guest driver's
// rtmrN:sha384 file. A fake tree's regular file cannot extend, but it shows
// exactly what was written; a FIFO shows it came in one write.
func TestTDXExtendWritesTheKernelABI(t *testing.T) {
	root := t.TempDir()
	if _, err := simulator.WriteHostTree(root, simulator.HostConfig{Seed: 4, TDXLive: true, BootID: treeBootID}); err != nil {
		t.Fatal(err)
	}
	src, ok := hwsource.NewTDX(root).(hwsource.Extender)
	if !ok {
		t.Fatal("the real TDX source is not an Extender")
	}
	ctx := context.Background()
	rtmr3 := filepath.Join(root, hwsource.RTMRDir, "rtmr3:sha384")
	digest := sha384("container event")
	if err := src.Extend(ctx, 4, []eventlog.Digest{{Alg: eventlog.AlgSHA384, Value: digest}}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, root, filepath.Join(hwsource.RTMRDir, "rtmr3:sha384")); !bytes.Equal(got, digest) {
		t.Errorf("rtmr3:sha384 holds %x after the extend, want exactly the digest %x", got, digest)
	}

	// What the kernel would refuse is refused before anything is written.
	before := readFile(t, root, filepath.Join(hwsource.RTMRDir, "rtmr3:sha384"))
	for _, tc := range []struct {
		name    string
		index   uint32
		digests []eventlog.Digest
		want    string
	}{
		{"MRTD", 0, []eventlog.Digest{{Alg: eventlog.AlgSHA384, Value: digest}}, "not an RTMR"},
		{"past RTMR3", 5, []eventlog.Digest{{Alg: eventlog.AlgSHA384, Value: digest}}, "not an RTMR"},
		{"SHA-256", 4, []eventlog.Digest{{Alg: eventlog.AlgSHA256, Value: make([]byte, 32)}}, "sha256"},
		{"short digest", 4, []eventlog.Digest{{Alg: eventlog.AlgSHA384, Value: digest[:47]}}, "48-byte"},
		{"two digests", 4, []eventlog.Digest{{Alg: eventlog.AlgSHA384, Value: digest}, {Alg: eventlog.AlgSHA384, Value: digest}}, "one 48-byte"},
		{"none", 4, nil, "one 48-byte"},
	} {
		if err := src.Extend(ctx, tc.index, tc.digests); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Extend = %v, want an error about %q", tc.name, err, tc.want)
		}
	}
	if !bytes.Equal(readFile(t, root, filepath.Join(hwsource.RTMRDir, "rtmr3:sha384")), before) {
		t.Error("a refused extend wrote to the RTMR file")
	}

	// One write of 48 bytes: the kernel refuses partial writes.
	if err := os.Remove(rtmr3); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(rtmr3, 0o600); err != nil {
		t.Fatal(err)
	}
	reads := make(chan [][]byte, 1)
	go func() {
		f, err := os.Open(rtmr3)
		if err != nil {
			reads <- nil
			return
		}
		defer f.Close()
		var got [][]byte
		for {
			buf := make([]byte, 4096)
			n, err := f.Read(buf)
			if n > 0 {
				got = append(got, buf[:n])
			}
			if err == io.EOF || err != nil {
				break
			}
		}
		reads <- got
	}()
	if err := src.Extend(ctx, 4, []eventlog.Digest{{Alg: eventlog.AlgSHA384, Value: digest}}); err != nil {
		t.Fatal(err)
	}
	if got := <-reads; len(got) != 1 || !bytes.Equal(got[0], digest) {
		t.Errorf("the extend reached the file as %d reads (%x), want one read of the 48-byte digest", len(got), got)
	}

	if id, err := src.BootID(ctx); err != nil || id != treeBootID {
		t.Errorf("BootID = %q, %v; want the tree's %q", id, err, treeBootID)
	}
}

// TestTDXExtendNotAvailable: without the sysfs measurements (a kernel
// before 6.16) the source is no Extender, decided when it is built, and it
// says what extending needs.
func TestTDXExtendNotAvailable(t *testing.T) {
	for _, kernel := range []simulator.Kernel{simulator.Kernel68, simulator.KernelStaged} {
		root := t.TempDir()
		if _, err := simulator.WriteHostTree(root, simulator.HostConfig{Seed: 4, Kernel: kernel}); err != nil {
			t.Fatal(err)
		}
		src := hwsource.NewTDX(root)
		if _, ok := src.(hwsource.Extender); ok {
			t.Fatalf("kernel %s: the TDX source is an Extender without the sysfs measurements", kernel)
		}
		why, ok := src.(hwsource.CannotExtend)
		if !ok {
			t.Fatalf("kernel %s: the TDX source does not say why it cannot extend", kernel)
		}
		err := why.CannotExtend()
		if err == nil || !strings.Contains(err.Error(), "Linux 6.16+") || !strings.Contains(err.Error(), filepath.Join(root, hwsource.RTMRDir)) {
			t.Errorf("kernel %s: CannotExtend = %v, want an error naming Linux 6.16+ and the measurements directory", kernel, err)
		}
	}
}

// TestTPMExtendOnSimulator runs the real TPM backend's PCR_Extend against
// the go-tpm-tools simulator served at dev/tpmrm0.
func TestTPMExtendOnSimulator(t *testing.T) {
	sim, err := simulator.NewTPM(simulator.TPMConfig{Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	simLog, _ := sim.ReadLog(context.Background())
	root := writeTree(t, map[string][]byte{
		hwsource.TPMLogPath: simLog.Data,
		hwsource.BootIDPath: []byte(treeBootID + "\n"),
	})
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	ln, err := net.Listen("unix", filepath.Join(root, hwsource.TPMDevicePath))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go sim.Serve(ln)

	ctx := context.Background()
	src := hwsource.NewTPM(root).(hwsource.Extender)
	before, err := sim.Registers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	algs := []eventlog.Alg{eventlog.AlgSHA1, eventlog.AlgSHA256}
	digests := eventlog.Measure([]byte("container event"), algs)
	if err := src.Extend(ctx, 23, digests); err != nil {
		t.Fatal(err)
	}
	after, err := sim.Registers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range digests {
		h := d.Alg.New()
		h.Write(before.Get(d.Alg, 23))
		h.Write(d.Value)
		if want := h.Sum(nil); !bytes.Equal(after.Get(d.Alg, 23), want) {
			t.Errorf("%s PCR23 = %x after the extend, want %x", d.Alg, after.Get(d.Alg, 23), want)
		}
		for pcr := uint32(0); pcr < 23; pcr++ {
			if !bytes.Equal(after.Get(d.Alg, pcr), before.Get(d.Alg, pcr)) {
				t.Errorf("%s PCR%d changed", d.Alg, pcr)
			}
		}
	}
	if err := src.Extend(ctx, 24, digests); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("extending PCR24: %v", err)
	}
	id, err := src.BootID(ctx)
	if err != nil || !strings.HasPrefix(id, treeBootID+"/tpm-reset-") {
		t.Errorf("BootID = %q, %v; want the kernel's boot ID and the TPM's reset count", id, err)
	}
}
