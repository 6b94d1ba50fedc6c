package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
)

// The IMA measurement list in decode and replay (--ima).

// imaHashUsage is the help of decode's and replay's --ima-hash.
const imaHashUsage = "with --ima: the template hash algorithm of FILE (sha1, sha256, ...); default: from a per-bank file name (binary_runtime_measurements_sha256), else sha1"

// parseIMAFile reads and parses an IMA measurement list file. Its template
// hash algorithm is hashName, or the one its name says (FileAlg), or SHA-1.
// A last entry cut short (the list copied while the kernel appended) is
// not an error: it is left out, and stderr says so.
func parseIMAFile(path, hashName string, stderr io.Writer) (*ima.List, error) {
	alg, ok := ima.FileAlg(filepath.Base(path))
	if !ok {
		alg = eventlog.AlgSHA1
	}
	if hashName != "" {
		if alg, ok = eventlog.ParseAlg(hashName); !ok {
			return nil, fmt.Errorf("--ima-hash %q: not an algorithm name (sha1, sha256, sha384, sha512, sm3_256)", hashName)
		}
	}
	b, err := readLogFile(path)
	if err != nil {
		return nil, err
	}
	l, err := ima.Parse(b, ima.Options{HashAlg: alg})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if l.Pending > 0 {
		fmt.Fprintf(stderr, "eventlog-server: %s: the last %d bytes are an incomplete entry (the list was read while the kernel appended to it): left out\n", path, l.Pending)
	}
	return l, nil
}

// decodeIMA prints the list as the JSON the server writes for it.
func decodeIMA(path, hashName string, stdout, stderr io.Writer) int {
	l, err := parseIMAFile(path, hashName, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "eventlog-server decode: %v\n", err)
		return 1
	}
	all, _ := l.Slice(0, 0)
	return exitStatus(ima.WriteCCNPJSON(stdout, l, all), stderr)
}

// replayIMA prints {"entries": N, "registers": {"PCR10": {"sha1": ...,
// "sha256": ...}}}: every PCR the list extends, in index order, in the
// SHA-1 and SHA-256 banks.
func replayIMA(path, hashName string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "eventlog-server replay: %v\n", err)
		return 1
	}
	l, err := parseIMAFile(path, hashName, stderr)
	if err != nil {
		return fail(err)
	}
	bank, err := ima.Replay(l, ima.DefaultBanks...)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", path, err))
	}
	// Replay extends the SHA-1 bank with the template hashes and the
	// others with the data's digests: a changed entry makes them disagree,
	// which is worth a word.
	var hashErr *ima.HashError
	if err := ima.CheckTemplateHashes(l); errors.As(err, &hashErr) {
		fmt.Fprintf(stderr, "eventlog-server replay: warning: %v\n", err)
	}
	dst := []byte(`{"entries": `)
	dst = strconv.AppendInt(dst, int64(l.Len()), 10)
	dst = append(dst, `, "registers": {`...)
	for i, index := range bank.Indexes() {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, "\n  "...)
		dst = strconv.AppendQuote(dst, eventlog.TPM.RegisterName(index))
		dst = append(dst, ": {"...)
		for j, alg := range ima.DefaultBanks {
			if j > 0 {
				dst = append(dst, ", "...)
			}
			dst = strconv.AppendQuote(dst, alg.String())
			dst = append(dst, `: "`...)
			dst = hex.AppendEncode(dst, bank.Get(alg, index))
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	}
	dst = append(dst, "\n}}\n"...)
	_, err = stdout.Write(dst)
	return exitStatus(err, stderr)
}
