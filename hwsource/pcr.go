package hwsource

import (
	"errors"
	"fmt"
	"slices"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// PCClientPCRs are the PCRs a PC Client TPM has: 0..23.
var PCClientPCRs = func() []uint32 {
	pcrs := make([]uint32, 24)
	for i := range pcrs {
		pcrs[i] = uint32(i)
	}
	return pcrs
}()

// readAttempts bounds how often ReadPCRs starts over when PCRs change while
// it reads them.
const readAttempts = 3

// ReadPCRs reads the given PCRs in each algorithm's bank with TPM2_PCR_Read.
// A TPM returns at most 8 PCRs per command, so the read takes several
// commands; when the TPM's PCR update counter moves between them (something
// extended a PCR meanwhile) the read starts over, so the result is one
// consistent snapshot. Both the real TPM backend and the simulator read PCRs
// through this function.
func ReadPCRs(t transport.TPM, algs []eventlog.Alg, pcrs []uint32) (eventlog.Bank, error) {
	for _, p := range pcrs {
		if p > 255 {
			return nil, fmt.Errorf("PCR %d is out of range", p)
		}
	}
	for range readAttempts {
		bank, err := readPCRsOnce(t, algs, pcrs)
		if !errors.Is(err, errPCRsChanged) {
			return bank, err
		}
	}
	return nil, fmt.Errorf("PCRs kept changing while being read (%d attempts): %w", readAttempts, errPCRsChanged)
}

var errPCRsChanged = errors.New("the TPM's PCR update counter changed during the read")

func readPCRsOnce(t transport.TPM, algs []eventlog.Alg, pcrs []uint32) (eventlog.Bank, error) {
	bank := eventlog.Bank{}
	var counter uint32
	first := true
	for _, alg := range algs {
		want := slices.Clone(pcrs)
		for len(want) > 0 {
			sel := make([]uint, len(want))
			for i, p := range want {
				sel[i] = uint(p)
			}
			rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{
				PCRSelections: []tpm2.TPMSPCRSelection{{
					Hash:      tpm2.TPMAlgID(alg),
					PCRSelect: tpm2.PCClientCompatible.PCRs(sel...),
				}},
			}}.Execute(t)
			if err != nil {
				return nil, fmt.Errorf("TPM2_PCR_Read of %s PCRs %v: %w", alg, want, err)
			}
			if !first && rsp.PCRUpdateCounter != counter {
				return nil, errPCRsChanged
			}
			counter, first = rsp.PCRUpdateCounter, false

			got, err := pcrsRead(rsp, alg)
			if err != nil {
				return nil, err
			}
			if len(got) == 0 {
				return nil, fmt.Errorf("TPM2_PCR_Read returned none of %s PCRs %v: the TPM has no %s bank, or those PCRs are not allocated in it", alg, want, alg)
			}
			for i, p := range got {
				if !slices.Contains(want, p) {
					return nil, fmt.Errorf("TPM2_PCR_Read returned %s PCR %d, which was not asked for", alg, p)
				}
				v := rsp.PCRValues.Digests[i].Buffer
				if len(v) != alg.Size() {
					return nil, fmt.Errorf("TPM2_PCR_Read returned %d bytes for %s PCR %d, a %s digest has %d", len(v), alg, p, alg, alg.Size())
				}
				bank.Set(alg, p, slices.Clone(v))
				want = slices.DeleteFunc(want, func(w uint32) bool { return w == p })
			}
		}
	}
	return bank, nil
}

// pcrsRead lists the PCRs a PCR_Read response holds values for, in the order
// of its values: selections in order, PCRs ascending within each.
func pcrsRead(rsp *tpm2.PCRReadResponse, alg eventlog.Alg) ([]uint32, error) {
	var got []uint32
	for _, s := range rsp.PCRSelectionOut.PCRSelections {
		if s.Hash != tpm2.TPMAlgID(alg) {
			return nil, fmt.Errorf("TPM2_PCR_Read returned a selection for algorithm 0x%04x, %s was asked for", uint16(s.Hash), alg)
		}
		for byteIdx, bits := range s.PCRSelect {
			for bit := range 8 {
				if bits&(1<<bit) != 0 {
					got = append(got, uint32(byteIdx*8+bit))
				}
			}
		}
	}
	if len(got) != len(rsp.PCRValues.Digests) {
		return nil, fmt.Errorf("TPM2_PCR_Read selected %d PCRs but returned %d values", len(got), len(rsp.PCRValues.Digests))
	}
	return got, nil
}

// PCRBanks lists the hash algorithms for which the TPM has PCRs allocated.
func PCRBanks(t transport.TPM) ([]eventlog.Alg, error) {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 1}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("TPM2_GetCapability(TPM_CAP_PCRS): %w", err)
	}
	sels, err := rsp.CapabilityData.Data.AssignedPCR()
	if err != nil {
		return nil, fmt.Errorf("TPM2_GetCapability(TPM_CAP_PCRS): %w", err)
	}
	var algs []eventlog.Alg
	for _, s := range sels.PCRSelections {
		if slices.ContainsFunc(s.PCRSelect, func(b byte) bool { return b != 0 }) {
			algs = append(algs, eventlog.Alg(s.Hash))
		}
	}
	return algs, nil
}
