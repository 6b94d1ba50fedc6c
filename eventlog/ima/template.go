package ima

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// A template's fields, as the kernel's template descriptors name them
// (Documentation/security/IMA-templates.rst).
type template struct {
	name   string
	fields []string
}

// builtinTemplates are the kernel's built-in templates.
var builtinTemplates = []template{
	{"ima", []string{"d", "n"}},
	{"ima-ng", []string{"d-ng", "n-ng"}},
	{"ima-ngv2", []string{"d-ngv2", "n-ng"}},
	{"ima-sig", []string{"d-ng", "n-ng", "sig"}},
	{"ima-sigv2", []string{"d-ngv2", "n-ng", "sig"}},
	{"ima-buf", []string{"d-ng", "n-ng", "buf"}},
	{"ima-modsig", []string{"d-ng", "n-ng", "sig", "d-modsig", "modsig"}},
	{"evm-sig", []string{"d-ng", "n-ng", "evmsig", "xattrnames", "xattrlengths", "xattrvalues", "iuid", "igid", "imode"}},
}

// fieldFormat is how a field's bytes are laid out, and so how the kernel
// prints it in ascii_runtime_measurements (its enum data_formats).
type fieldFormat uint8

const (
	fmtDigest             fieldFormat = iota + 1 // the digest: printed as hex
	fmtDigestWithAlgo                            // "<algo>:\0" and the digest: "<algo>:<hex>"
	fmtDigestWithTypeAlgo                        // "<type>:<algo>:\0" and the digest: "<type>:<algo>:<hex>"
	fmtString                                    // a NUL-terminated string: printed as is
	fmtHex                                       // bytes: printed as hex
	fmtUint                                      // a 1, 2, 4 or 8-byte integer: printed in decimal
)

var fieldFormats = map[string]fieldFormat{
	"d":            fmtDigest,
	"n":            fmtString,
	"d-ng":         fmtDigestWithAlgo,
	"d-ngv2":       fmtDigestWithTypeAlgo,
	"n-ng":         fmtString,
	"sig":          fmtHex,
	"buf":          fmtHex,
	"d-modsig":     fmtDigestWithAlgo,
	"modsig":       fmtHex,
	"evmsig":       fmtHex,
	"xattrnames":   fmtString,
	"xattrlengths": fmtHex,
	"xattrvalues":  fmtHex,
	"iuid":         fmtUint,
	"igid":         fmtUint,
	"imode":        fmtUint,
}

// TemplateFields returns the field IDs of a template: a built-in one's, or
// those a custom template (ima_template_fmt=) names, as the list shows such
// a template by its format ("d-ng|n-ng|buf"). ok is false for a template
// with an unknown field: its data can only be shown as bytes.
func TemplateFields(name string) (fields []string, ok bool) {
	for _, t := range builtinTemplates {
		if t.name == name {
			return t.fields, true
		}
	}
	if name == "" {
		return nil, false
	}
	fields = strings.Split(name, "|")
	for _, id := range fields {
		if fieldFormats[id] == 0 {
			return nil, false
		}
	}
	return fields, true
}

// Field is one field of an entry's template data.
type Field struct {
	// ID is the kernel's template field ID ("d-ng", "n-ng", "sig").
	ID string
	// Data is the field's bytes, without their size. A field may be empty
	// (an ima-sig entry of an unsigned file has an empty sig).
	Data  []byte
	order binary.ByteOrder
}

// Fields splits the entry's template data into its fields; order is the
// list's (List.Order). ok is false for a template whose fields are unknown
// (see TemplateFields). The Fields alias the entry.
func (e *Entry) Fields(order binary.ByteOrder) (fields []Field, ok bool) {
	ids, ok := TemplateFields(e.TemplateName)
	if !ok {
		return nil, false
	}
	if order == nil {
		order = binary.LittleEndian
	}
	fields = make([]Field, 0, len(ids))
	err := eachField(e, ids, order, func(id string, data []byte) {
		fields = append(fields, Field{ID: id, Data: data, order: order})
	})
	return fields, err == nil
}

// eachField calls fn with each field of the entry's data, after checking
// that the fields ids name take the data exactly.
func eachField(e *Entry, ids []string, order binary.ByteOrder, fn func(id string, data []byte)) error {
	d := e.TemplateData
	if e.TemplateName == "ima" {
		// The parser framed it: a digest without a size, then the name.
		if fn != nil {
			fn("d", d[:imaDigestSize:imaDigestSize])
			fn("n", d[imaDigestSize+4:])
		}
		return nil
	}
	for i, id := range ids {
		if len(d) < 4 {
			return fmt.Errorf("template %s: field %d (%s) has no room for its size: %d bytes of template data left", e.TemplateName, i+1, id, len(d))
		}
		n := order.Uint32(d)
		if uint64(n) > uint64(len(d)-4) {
			return fmt.Errorf("template %s: field %d (%s) size %d exceeds the %d bytes of template data left", e.TemplateName, i+1, id, n, len(d)-4)
		}
		if fn != nil {
			fn(id, d[4:4+n:4+n])
		}
		d = d[4+n:]
	}
	if len(d) > 0 {
		return fmt.Errorf("template %s: %d bytes of template data after its %d fields", e.TemplateName, len(d), len(ids))
	}
	return nil
}

// checkFields checks that a known template's fields take its data exactly:
// a list that breaks this is damaged, and is refused where it is rather
// than served with fields that cannot be shown.
func checkFields(e *Entry, order binary.ByteOrder) error {
	ids, ok := TemplateFields(e.TemplateName)
	if !ok {
		return nil
	}
	return eachField(e, ids, order, nil)
}

// String returns the field as the kernel prints it in
// ascii_runtime_measurements: a digest as hex after its algorithm
// ("sha256:ab12..."), a name as the string, other bytes as hex, an integer
// in decimal.
func (f Field) String() string { return string(appendFieldText(nil, f.ID, f.Data, f.order)) }

// Digest returns the algorithm (as the kernel names it: "sha256", or for
// d-ngv2 "ima:sha256" with the digest type) and the digest of a digest
// field. ok is false for another field, or one without an algorithm
// prefix (the "ima" template's d, which is SHA-1 or MD5).
func (f Field) Digest() (alg string, digest []byte, ok bool) {
	switch fieldFormats[f.ID] {
	case fmtDigestWithAlgo, fmtDigestWithTypeAlgo:
		i := bytes.IndexByte(f.Data, 0)
		if i < 1 || f.Data[i-1] != ':' {
			return "", nil, false
		}
		return string(f.Data[:i-1]), f.Data[i+1:], true
	}
	return "", nil, false
}

// appendFieldText appends a field's text as ascii_runtime_measurements
// shows it (see Field.String).
func appendFieldText(dst []byte, id string, data []byte, order binary.ByteOrder) []byte {
	switch fieldFormats[id] {
	case fmtDigestWithAlgo, fmtDigestWithTypeAlgo:
		if i := bytes.IndexByte(data, 0); i >= 0 {
			dst = append(dst, data[:i]...)
			data = data[i+1:]
		}
	case fmtString:
		if i := bytes.IndexByte(data, 0); i >= 0 {
			data = data[:i]
		}
		return append(dst, data...)
	case fmtUint:
		switch len(data) {
		case 1:
			return strconv.AppendUint(dst, uint64(data[0]), 10)
		case 2:
			return strconv.AppendUint(dst, uint64(order.Uint16(data)), 10)
		case 4:
			return strconv.AppendUint(dst, uint64(order.Uint32(data)), 10)
		case 8:
			return strconv.AppendUint(dst, order.Uint64(data), 10)
		}
	}
	return hex.AppendEncode(dst, data)
}
