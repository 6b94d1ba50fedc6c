package ima

import (
	"encoding/binary"
	"fmt"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
)

// AppendEntry appends an entry as the kernel writes it in order o, with the
// template hash it computes: hashAlg's digest of the template data (see
// TemplateDigest). For the "ima" template, data is the 20-byte digest, the
// name's u32 size and the name (TemplateData's layout); for the others, the
// fields with their sizes (see AppendField).
func AppendEntry(dst []byte, o binary.ByteOrder, hashAlg eventlog.Alg, pcr uint32, name string, data []byte) ([]byte, error) {
	if name == "ima" && (len(data) < imaDigestSize+4 || int(o.Uint32(data[imaDigestSize:])) != len(data)-imaDigestSize-4) {
		return nil, fmt.Errorf(`an "ima" template's data is a %d-byte digest and a sized name`, imaDigestSize)
	}
	hash, err := TemplateDigest(&Entry{TemplateName: name, TemplateData: data}, hashAlg)
	if err != nil {
		return nil, err
	}
	return AppendEntryHash(dst, o, pcr, hash, name, data), nil
}

// AppendViolation appends a violation: an entry whose template hash is
// hashSize zeros.
func AppendViolation(dst []byte, o binary.ByteOrder, hashSize int, pcr uint32, name string, data []byte) []byte {
	return AppendEntryHash(dst, o, pcr, make([]byte, hashSize), name, data)
}

// AppendEntryHash appends an entry with the given template hash, right or
// wrong.
func AppendEntryHash(dst []byte, o binary.ByteOrder, pcr uint32, hash []byte, name string, data []byte) []byte {
	dst = appendUint32(dst, o, pcr)
	dst = append(dst, hash...)
	dst = appendUint32(dst, o, uint32(len(name)))
	dst = append(dst, name...)
	if name != "ima" {
		dst = appendUint32(dst, o, uint32(len(data)))
	}
	return append(dst, data...)
}

// AppendField appends a template field: its u32 size in order o, then data.
func AppendField(dst []byte, o binary.ByteOrder, data []byte) []byte {
	dst = appendUint32(dst, o, uint32(len(data)))
	return append(dst, data...)
}

// DigestField returns a d-ng field's bytes: the kernel's algorithm name, a
// colon, a NUL, and the digest ("sha256:\x00...").
func DigestField(alg string, digest []byte) []byte {
	return append(append([]byte(alg), ':', 0), digest...)
}

// NameField returns an n-ng field's bytes: the name and a NUL.
func NameField(name string) []byte { return append([]byte(name), 0) }

// NgData returns the template data of an ima-ng entry: a d-ng field of the
// file's digest with the kernel's name of its algorithm, and an n-ng field
// of its name.
func NgData(o binary.ByteOrder, alg string, digest []byte, name string) []byte {
	data := AppendField(nil, o, DigestField(alg, digest))
	return AppendField(data, o, NameField(name))
}

// IMAData returns the template data of an "ima" template entry: the
// 20-byte digest and the name.
func IMAData(o binary.ByteOrder, digest [20]byte, name string) []byte {
	data := append([]byte(nil), digest[:]...)
	data = appendUint32(data, o, uint32(len(name)))
	return append(data, name...)
}

func appendUint32(dst []byte, o binary.ByteOrder, v uint32) []byte {
	var b [4]byte
	o.PutUint32(b[:], v)
	return append(dst, b[:]...)
}
