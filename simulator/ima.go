package simulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// IMAListPath is where the kernel shows its IMA measurement list, under
// securityfs, relative to the host's root: where the real backend reads it.
const IMAListPath = hwsource.IMAListPath

// Defaults and limits of the simulated IMA measurement list.
const (
	DefaultIMAEntries = 40
	MaxIMAEntries     = 100_000
)

// imaPCR is the PCR the kernel's IMA extends (CONFIG_IMA_MEASURE_PCR_IDX).
const imaPCR = 10

// The simulated kernel's IMA: the ima-ng template, SHA-256 file digests
// (ima_hash=sha256), in little-endian byte order as on x86.
var imaOrder = binary.LittleEndian

// imaFiles are what a booting Linux system measures first; later entries
// are numbered files after them.
var imaFiles = []string{
	"/usr/lib/systemd/systemd",
	"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
	"/etc/ld.so.cache",
	"/usr/lib/x86_64-linux-gnu/libc.so.6",
	"/usr/lib/x86_64-linux-gnu/libselinux.so.1",
	"/usr/lib/x86_64-linux-gnu/libmount.so.1",
	"/usr/lib/systemd/libsystemd-shared-252.so",
	"/usr/lib/modules/6.8.0/kernel/fs/overlayfs/overlay.ko",
	"/usr/bin/containerd",
	"/usr/bin/kubelet",
}

// imaList builds the simulated IMA measurement list: a boot_aggregate of
// PCRs 0-9 of the SHA-256 bank (as a kernel with ima_hash=sha256 and a
// SHA-256 PCR bank logs it), n-1 ima-ng file measurements, and, when there
// are at least 3 entries, one violation two thirds of the way in (a file
// measured while open for writing). The file digests come from the seed.
func imaList(seed int64, n int, pcrs eventlog.Bank) ([]byte, error) {
	agg, err := ima.BootAggregate(pcrs, eventlog.AlgSHA256)
	if err != nil {
		return nil, fmt.Errorf("simulated IMA: %w", err)
	}
	list, err := ima.AppendEntry(nil, imaOrder, eventlog.AlgSHA1, imaPCR, "ima-ng",
		ima.NgData(imaOrder, "sha256", agg, ima.BootAggregateName))
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x1a1a))
	violation := -1
	if n >= 3 {
		violation = 2 * n / 3
	}
	for i := 1; i < n; i++ {
		name := imaFileName(i)
		if i == violation {
			list = ima.AppendViolation(list, imaOrder, sha1Size, imaPCR, "ima-ng",
				ima.NgData(imaOrder, "sha256", make([]byte, sha256.Size), "/var/log/journal/system.journal"))
			continue
		}
		if list, err = appendIMAFile(list, name, rng.Uint64()); err != nil {
			return nil, err
		}
	}
	return list, nil
}

const sha1Size = 20

// imaFileName names the file the i-th entry measures.
func imaFileName(i int) string {
	if i-1 < len(imaFiles) {
		return imaFiles[i-1]
	}
	return fmt.Sprintf("/usr/lib/x86_64-linux-gnu/libsimulated-%d.so", i)
}

// appendIMAFile appends an ima-ng measurement of a file whose content is
// told by salt.
func appendIMAFile(list []byte, name string, salt uint64) ([]byte, error) {
	content := fmt.Appendf(nil, "%s %d", name, salt)
	digest := sha256.Sum256(content)
	return ima.AppendEntry(list, imaOrder, eventlog.AlgSHA1, imaPCR, "ima-ng", ima.NgData(imaOrder, "sha256", digest[:], name))
}

// extendIMA extends the entries of list into the simulator's PCR 10, as
// the kernel does: an entry's template data goes in with TPM2_PCR_Event,
// so the TPM hashes it in each bank itself (the SHA-1 bank's digest is the
// template hash, the SHA-256 bank's the data's digest: if the list said
// otherwise, replay would not match); a violation extends all ones.
func extendIMA(tpm transport.TPM, list []byte) error {
	l, err := ima.Parse(list, ima.Options{Order: imaOrder})
	if err != nil {
		return fmt.Errorf("simulated IMA: %w", err)
	}
	if l.Pending != 0 {
		return errors.New("simulated IMA: the list ends inside an entry")
	}
	for e := range l.All() {
		if e.Violation() || len(e.TemplateData) > maxEventData {
			ds, err := ima.Digests(e, l.HashAlg, tpmAlgs)
			if err == nil {
				err = hwsource.ExtendPCR(tpm, e.PCR, ds)
			}
			if err != nil {
				return fmt.Errorf("simulated IMA: extend entry %d into PCR%d: %w", e.Num, e.PCR, err)
			}
			continue
		}
		pcr := tpm2.AuthHandle{Handle: tpm2.TPMHandle(e.PCR), Auth: tpm2.PasswordAuth(nil)}
		if _, err := (tpm2.PCREvent{PCRHandle: pcr, EventData: tpm2.TPM2BEvent{Buffer: e.TemplateData}}).Execute(tpm); err != nil {
			return fmt.Errorf("simulated IMA: extend entry %d into PCR%d: %w", e.Num, e.PCR, err)
		}
	}
	return nil
}

// IMAList returns the simulated kernel's IMA measurement list as
// ima/binary_runtime_measurements shows it now. The list only grows: the
// bytes returned never change (they are shared, not copied).
func (t *TPM) IMAList() ([]byte, error) {
	if err := t.Booted(context.Background()); err != nil { // bounded: the boot is CPU work, and ends
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ima[:len(t.ima):len(t.ima)], nil
}

// AppendIMA measures files as the kernel's IMA does while the machine
// runs: for each, it appends an ima-ng entry to the list and extends it
// into PCR 10. A file's digest comes from its name and how many entries
// the list had. The list and the PCR change together: a reader never sees
// one without the other.
func (t *TPM) AppendIMA(ctx context.Context, files ...string) error {
	if err := t.Booted(ctx); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sim == nil {
		return errors.New("the simulated TPM is closed")
	}
	var added []byte
	for _, name := range files {
		var err error
		if added, err = appendIMAFile(added, name, uint64(len(t.ima)+len(added))); err != nil {
			return err
		}
	}
	if err := extendIMA(transport.FromReadWriter(t.sim), added); err != nil {
		return err
	}
	// A new array when it must grow: IMAList's callers hold the old one.
	t.ima = append(t.ima, added...)
	return nil
}

// appendIMAFiles returns list with n more ima-ng entries, and the expected
// registers of the grown list. It first checks that list replays to want,
// the PCR 10 its tree expects: a tree whose expectations already disagree
// is not made worse.
func appendIMAFiles(list []byte, want map[string]map[string]string, n int) ([]byte, map[string]map[string]string, error) {
	if n < 1 || n > MaxIMAEntries {
		return nil, nil, fmt.Errorf("appending %d IMA entries: outside 1..%d", n, MaxIMAEntries)
	}
	l, err := ima.Parse(list, ima.Options{Order: imaOrder})
	if err != nil {
		return nil, nil, fmt.Errorf("the tree's IMA list: %w", err)
	}
	if l.Pending != 0 {
		return nil, nil, errors.New("the tree's IMA list ends inside an entry")
	}
	before, err := imaExpected(l)
	if err != nil {
		return nil, nil, err
	}
	if !maps.EqualFunc(before, want, maps.Equal) {
		return nil, nil, fmt.Errorf("the tree's IMA list replays to %v, its expected registers say %v", before, want)
	}
	var added []byte
	for i := range n {
		k := l.Len() + i + 1
		if added, err = appendIMAFile(added, fmt.Sprintf("/usr/local/bin/appended-%d", k), uint64(k)); err != nil {
			return nil, nil, err
		}
	}
	grown, err := ima.Parse(append(bytes.Clone(list), added...), ima.Options{Order: imaOrder})
	if err != nil {
		return nil, nil, err
	}
	after, err := imaExpected(grown)
	return added, after, err
}

// imaExpected is the expected-registers form of a list's replay.
func imaExpected(l *ima.List) (map[string]map[string]string, error) {
	bank, err := ima.Replay(l, tpmAlgs...)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for alg, regs := range bank {
		for idx, v := range regs {
			name := eventlog.TPM.RegisterName(idx)
			if out[name] == nil {
				out[name] = map[string]string{}
			}
			out[name][alg.String()] = fmt.Sprintf("%x", v)
		}
	}
	return out, nil
}
