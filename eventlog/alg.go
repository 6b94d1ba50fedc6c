package eventlog

import (
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// Alg is a TPM_ALG_ID from the TCG Algorithm Registry, as it appears in the
// Spec ID event and in every TCG_PCR_EVENT2 digest.
type Alg uint16

// The hash algorithms real event logs use.
const (
	AlgSHA1    Alg = 0x0004
	AlgSHA256  Alg = 0x000B
	AlgSHA384  Alg = 0x000C
	AlgSHA512  Alg = 0x000D
	AlgSM3_256 Alg = 0x0012
)

// algInfo is what the project knows about an algorithm: the name used in
// files and flags, the digest size and, where Go has it, the hash.
var algInfo = map[Alg]struct {
	name string
	size int
	hash crypto.Hash
}{
	AlgSHA1:    {"sha1", sha1.Size, crypto.SHA1},
	AlgSHA256:  {"sha256", sha256.Size, crypto.SHA256},
	AlgSHA384:  {"sha384", sha512.Size384, crypto.SHA384},
	AlgSHA512:  {"sha512", sha512.Size, crypto.SHA512},
	AlgSM3_256: {"sm3_256", 32, 0},
}

// String returns the lower-case name tpm2-tools and the CCNP SDKs use
// ("sha384"), or "alg_0x..." for an algorithm outside the registry subset above.
func (a Alg) String() string {
	if info, ok := algInfo[a]; ok {
		return info.name
	}
	return fmt.Sprintf("alg_0x%04x", uint16(a))
}

// Size returns the digest size in bytes, or 0 when the algorithm is unknown.
// A log's own Spec ID event is the authority on sizes; this is for building logs.
func (a Alg) Size() int { return algInfo[a].size }

// New returns a new hash for the algorithm, or nil when Go cannot compute it
// (SM3) or the algorithm is unknown.
func (a Alg) New() hash.Hash {
	h := algInfo[a].hash
	if h == 0 || !h.Available() {
		return nil
	}
	return h.New()
}

// ParseAlg returns the algorithm with the given name ("sha256").
func ParseAlg(name string) (Alg, bool) {
	for a, info := range algInfo {
		if info.name == name {
			return a, true
		}
	}
	return 0, false
}
