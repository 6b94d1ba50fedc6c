// Package imaascii rebuilds the binary form of an IMA measurement list from
// its ASCII form (securityfs ima/ascii_runtime_measurements), for tests:
// attestation projects publish real lists in that form, one entry a line:
//
//	10 <template hash> <template name> <field> <field> ...
//
// with each field as the kernel prints it ("sha256:<hex>", a file name,
// hex). A file name may hold spaces, so the fields are told apart by
// position: the digest first, the name in the middle, the template's other
// fields (hex or digests, never with spaces) last. A name holding a newline
// cannot be rebuilt.
package imaascii

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
)

// LineError says which line could not be rebuilt, or did not hash to its
// template hash.
type LineError struct {
	Line   int
	Reason string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("ASCII measurement list line %d: %s", e.Line, e.Reason)
}

// Rebuild returns the binary list that ascii shows, and its byte order.
// Each rebuilt entry's template data must hash (SHA-1) to the template hash
// its line prints, or that hash must be zeros (a violation): otherwise the
// rebuild is wrong, or the line was changed, and the error says which line.
//
// The template hash covers the fields' sizes in the byte order of the
// machine that logged them: the order is the one in which the lines hash
// to their template hashes.
func Rebuild(ascii []byte) ([]byte, binary.ByteOrder, error) {
	le, errLE := rebuild(ascii, binary.LittleEndian)
	if errLE == nil {
		return le, binary.LittleEndian, nil
	}
	be, errBE := rebuild(ascii, binary.BigEndian)
	if errBE == nil {
		return be, binary.BigEndian, nil
	}
	// Neither: the order that got further names the line at fault.
	var l1, l2 *LineError
	if errors.As(errLE, &l1) && errors.As(errBE, &l2) && l2.Line > l1.Line {
		return nil, nil, errBE
	}
	return nil, nil, errLE
}

func rebuild(ascii []byte, o binary.ByteOrder) ([]byte, error) {
	var out []byte
	for i, line := range strings.Split(strings.TrimSuffix(string(ascii), "\n"), "\n") {
		num := i + 1
		fail := func(format string, args ...any) ([]byte, error) {
			return nil, &LineError{Line: num, Reason: fmt.Sprintf(format, args...)}
		}
		pcrText, rest, ok1 := strings.Cut(line, " ")
		hashText, rest, ok2 := strings.Cut(strings.TrimLeft(rest, " "), " ")
		name, rest, ok3 := strings.Cut(rest, " ")
		if !ok1 || !ok2 || !ok3 {
			return fail("not PCR, template hash, template name and fields: %q", line)
		}
		pcr, err := strconv.ParseUint(strings.TrimSpace(pcrText), 10, 32)
		if err != nil {
			return fail("PCR %q: %v", pcrText, err)
		}
		hash, err := hex.DecodeString(hashText)
		if err != nil || len(hash) != sha1.Size {
			return fail("template hash %q is not %d bytes of hex", hashText, sha1.Size)
		}
		data, err := templateData(name, rest, o)
		if err != nil {
			return fail("%v", err)
		}
		out = ima.AppendEntryHash(out, o, uint32(pcr), hash, name, data)
		if bytes.Equal(hash, make([]byte, sha1.Size)) {
			continue // a violation: its hash is not the data's
		}
		e := ima.Entry{TemplateName: name, TemplateData: data}
		if sum, _ := ima.TemplateDigest(&e, eventlog.AlgSHA1); !bytes.Equal(sum, hash) {
			return fail("the rebuilt template data hashes to %x, the line's template hash is %x", sum, hash)
		}
	}
	return out, nil
}

// templateData rebuilds a template's data from the fields' text.
func templateData(name, text string, o binary.ByteOrder) ([]byte, error) {
	ids, ok := ima.TemplateFields(name)
	if !ok {
		return nil, fmt.Errorf("template %q: its fields are unknown", name)
	}
	if name == "ima" {
		digestText, fileName, ok := strings.Cut(text, " ")
		digest, err := hex.DecodeString(digestText)
		if !ok || err != nil || len(digest) != 20 {
			return nil, fmt.Errorf(`"ima" template: %q is not a 20-byte hex digest and a name`, text)
		}
		return ima.IMAData(o, [20]byte(digest), fileName), nil
	}
	if len(ids) < 2 || ids[1] != "n-ng" {
		return nil, fmt.Errorf("template %q: only templates of a digest, a name and fields without spaces can be rebuilt", name)
	}
	tokens := strings.Split(text, " ")
	trailing := len(ids) - 2
	if len(tokens) < 2+trailing {
		return nil, fmt.Errorf("template %s has %d fields, the line %d", name, len(ids), len(tokens))
	}
	fieldText := make([]string, len(ids))
	fieldText[0] = tokens[0]
	fieldText[1] = strings.Join(tokens[1:len(tokens)-trailing], " ")
	copy(fieldText[2:], tokens[len(tokens)-trailing:])
	var data []byte
	for i, id := range ids {
		b, err := fieldBytes(id, fieldText[i])
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", id, err)
		}
		data = ima.AppendField(data, o, b)
	}
	return data, nil
}

// fieldBytes turns a field's text back into its bytes.
func fieldBytes(id, text string) ([]byte, error) {
	switch id {
	case "n-ng":
		return ima.NameField(text), nil
	case "d-ng", "d-ngv2", "d-modsig":
		if text == "" {
			return nil, nil // no digest (an unsigned module's d-modsig)
		}
		i := strings.LastIndexByte(text, ':')
		digest, err := hex.DecodeString(text[i+1:])
		if i < 1 || err != nil {
			return nil, fmt.Errorf("%q is not <algorithm>:<hex>", text)
		}
		return ima.DigestField(text[:i], digest), nil
	case "sig", "buf", "modsig":
		return hex.DecodeString(text)
	}
	return nil, fmt.Errorf("cannot rebuild a %s field from its text", id)
}
