package hwsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// Extender is a Source whose registers software can extend after boot: the
// service records container-level events into the runtime register (TDX
// RTMR3, TPM PCR 23) through it. The service asks a Source for it with a type
// assertion; a source that cannot extend simply does not implement it.
type Extender interface {
	Source
	// Extend extends each digest into register index of the digest's
	// algorithm bank, as the hardware does: new = H(old || digest). It
	// returns only once the register holds the new value. An error leaves it
	// unknown whether the extend happened; read the registers to find out.
	Extend(ctx context.Context, index uint32, digests []eventlog.Digest) error
	// BootID names the registers' current power cycle: it changes when,
	// and only when, they are reset to their boot values. A runtime log
	// kept across server restarts belongs to one boot.
	BootID(ctx context.Context) (string, error)
}

// BootIDPath is the kernel's random ID of the current boot, under the root.
// It is not namespaced: a container reads the host's.
const BootIDPath = "proc/sys/kernel/random/boot_id"

// ReadBootID reads the kernel's boot ID under root.
func ReadBootID(root string) (string, error) {
	path := hostPath(root, BootIDPath)
	b, err := readLimited(path, 128)
	if err != nil {
		return "", fmt.Errorf("reading the boot ID: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("reading the boot ID: %s is empty", path)
	}
	return id, nil
}

var (
	_ Extender = (*tdxExtender)(nil)
	_ Extender = (*tpmSource)(nil)
)

// Extend extends an RTMR through the tdx_guest driver (Linux 6.16+): writing
// a SHA-384 digest to measurements/rtmrN:sha384 makes the kernel call
// TDG.MR.RTMR.EXTEND. The kernel takes exactly one digest (48 bytes) in one
// write at offset 0 and refuses anything else with EINVAL; only root may
// write (mode 0644). index is the CC MR index: 1..4 for RTMR0..3.
func (s *tdxExtender) Extend(ctx context.Context, index uint32, digests []eventlog.Digest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if index < 1 || index > 4 {
		return fmt.Errorf("CC MR index %d is not an RTMR (1..4 are RTMR0..3)", index)
	}
	var digest []byte
	for _, d := range digests {
		if d.Alg != eventlog.AlgSHA384 {
			return fmt.Errorf("RTMRs are SHA-384 registers; cannot extend a %s digest", d.Alg)
		}
		digest = d.Value
	}
	if len(digests) != 1 || len(digest) != rtmrDigestSize {
		return fmt.Errorf("an RTMR extend takes one %d-byte SHA-384 digest", rtmrDigestSize)
	}
	return writeRTMR(hostPath(s.root, RTMRPath(int(index-1))), digest)
}

const rtmrDigestSize = 48

// writeRTMR writes the digest as the sysfs attribute takes it: once, whole,
// at offset 0 (no O_APPEND, no O_TRUNC, which sysfs does not implement).
func writeRTMR(path string, digest []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: cannot extend: no %s (RTMR extends need Linux 6.16+ with the tdx_guest driver): %w", ErrNotAvailable, path, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: cannot extend: %w (the RTMR files are writable by root only: run the server as root)", ErrNotAvailable, err)
	case err != nil:
		return fmt.Errorf("cannot extend: %w", err)
	}
	n, err := f.Write(digest)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("extending through %s: the kernel refused the %d-byte digest: %w", path, len(digest), err)
	}
	if err != nil {
		return fmt.Errorf("extending through %s: %w", path, err)
	}
	if n != len(digest) {
		return fmt.Errorf("extending through %s: wrote %d of %d bytes", path, n, len(digest))
	}
	return nil
}

// BootID is the kernel's boot ID: RTMRs start over only when the TD does.
func (s *tdxExtender) BootID(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return ReadBootID(s.root)
}

// Extend extends a PCR with TPM2_PCR_Extend, one digest per bank, through the
// TPM device (or a TPM on a Unix socket there).
func (s *tpmSource) Extend(ctx context.Context, index uint32, digests []eventlog.Digest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, path, err := s.open()
	if err != nil {
		return err
	}
	defer t.Close()
	if err := ExtendPCR(t, index, digests); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// BootID is the kernel's boot ID and the TPM's reset count: PCRs start over
// when the machine boots, and also when a TPM is reset under a running
// kernel (a vTPM or swtpm restarted).
func (s *tpmSource) BootID(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	boot, err := ReadBootID(s.root)
	if err != nil {
		return "", err
	}
	t, path, err := s.open()
	if err != nil {
		return "", err
	}
	defer t.Close()
	resets, err := ResetCount(t)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return boot + "/tpm-reset-" + strconv.FormatUint(uint64(resets), 10), nil
}

// ExtendPCR runs TPM2_PCR_Extend on PCR index with the given digests (one
// per bank). Both the real TPM backend and the simulator extend through it.
func ExtendPCR(t transport.TPM, index uint32, digests []eventlog.Digest) error {
	if index > 23 {
		return fmt.Errorf("PCR %d is out of range (a PC Client TPM has 0..23)", index)
	}
	if len(digests) == 0 {
		return errors.New("no digest to extend")
	}
	values := tpm2.TPMLDigestValues{}
	for _, d := range digests {
		if d.Alg.Size() != 0 && len(d.Value) != d.Alg.Size() {
			return fmt.Errorf("a %s digest has %d bytes, not %d", d.Alg, len(d.Value), d.Alg.Size())
		}
		values.Digests = append(values.Digests, tpm2.TPMTHA{HashAlg: tpm2.TPMIAlgHash(d.Alg), Digest: d.Value})
	}
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(index), Auth: tpm2.PasswordAuth(nil)},
		Digests:   values,
	}.Execute(t)
	if err != nil {
		return fmt.Errorf("TPM2_PCR_Extend of PCR%d: %w", index, err)
	}
	return nil
}

// ResetCount reads the TPM's count of TPM Resets (TPM2_ReadClock), which
// moves on each time its PCRs return to their reset values.
func ResetCount(t transport.TPM) (uint32, error) {
	rsp, err := tpm2.ReadClock{}.Execute(t)
	if err != nil {
		return 0, fmt.Errorf("TPM2_ReadClock: %w", err)
	}
	return rsp.CurrentTime.ClockInfo.ResetCount, nil
}
