package eventlog_test

import (
	"bytes"
	"maps"
	"slices"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/corpus"
)

func TestDetectKind(t *testing.T) {
	sha384 := []eventlog.Alg{eventlog.AlgSHA384}
	tdvf, _ := agileLog(1, sha384, bootEvents...)
	tpm, _ := agileLog(0, sha1sha256, bootEvents...)
	legacy, _ := legacyLog(bootEvents...)
	ff := func(n int) []byte { return bytes.Repeat([]byte{0xFF}, n) }
	join := func(b ...[]byte) []byte { return bytes.Join(b, nil) }
	for _, tc := range []struct {
		name  string
		input []byte
		area  bool // parse with ParseArea rather than Parse
		want  eventlog.Kind
	}{
		{"TDVF header, no padding", tdvf, false, eventlog.TDX},
		{"TDVF header in an area", join(tdvf, ff(4096)), true, eventlog.TDX},
		{"TPM log to EOF", tpm, false, eventlog.TPM},
		{"TPM log in an 0xFF-padded area", join(tpm, ff(100)), true, eventlog.TDX},
		{"TPM log in a zero-padded area", join(tpm, make([]byte, 100)), true, eventlog.TDX},
		{"padding then other bytes", join(tpm, ff(8), []byte("x")), true, eventlog.TPM},
		{"SHA-384 only at PCR 0", func() []byte { b, _ := agileLog(0, sha384, bootEvents...); return b }(), false, eventlog.TPM},
		{"index 1 with SHA-256", func() []byte { b, _ := agileLog(1, []eventlog.Alg{eventlog.AlgSHA256}, bootEvents...); return b }(), false, eventlog.TPM},
		{"index 1 with SHA-1 and SHA-384", func() []byte {
			b, _ := agileLog(1, []eventlog.Alg{eventlog.AlgSHA1, eventlog.AlgSHA384}, bootEvents...)
			return b
		}(), false, eventlog.TPM},
		{"legacy log", legacy, false, eventlog.TPM},
		{"legacy log in an area", join(legacy, ff(64)), true, eventlog.TDX},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parse := eventlog.Parse
			if tc.area {
				parse = eventlog.ParseArea
			}
			l, err := parse(tc.input)
			if err != nil {
				t.Fatal(err)
			}
			if got := eventlog.DetectKind(l, tc.input); got != tc.want {
				t.Errorf("DetectKind = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestParseDetectCorpus: every corpus file, read as bytes with no hint,
// comes out as the log and kind it is.
func TestParseDetectCorpus(t *testing.T) {
	for _, name := range slices.Sorted(maps.Keys(corpus.Expected(t))) {
		t.Run(name, func(t *testing.T) {
			want, _ := corpus.Parse(t, name)
			input := corpus.Read(t, name)
			l, kind, err := eventlog.ParseDetect(input)
			if err != nil {
				t.Fatal(err)
			}
			if wantKind := map[bool]eventlog.Kind{true: eventlog.TDX, false: eventlog.TPM}[corpus.IsArea(name)]; kind != wantKind {
				t.Errorf("kind %v, want %v", kind, wantKind)
			}
			if !bytes.Equal(l.Raw, want.Raw) {
				t.Errorf("log of %d bytes, want %d", len(l.Raw), len(want.Raw))
			}
			sameEvents(t, l.Events, want.Events)
		})
	}
}

func TestParseDetect(t *testing.T) {
	tpm, starts := agileLog(0, sha1sha256, bootEvents...)
	// A TPM log may hold a record whose first 8 bytes are zero: index 0,
	// EV_PREBOOT_CERT. It is not the end of the log.
	preboot := eventlog.AppendEvent2(bytes.Clone(tpm), 0, eventlog.EvPrebootCert, eventlog.Measure([]byte("cert"), sha1sha256), []byte("cert"))
	preboot = eventlog.AppendEvent2(preboot, 7, eventlog.EvSeparator, eventlog.Measure([]byte{0, 0, 0, 0}, sha1sha256), []byte{0, 0, 0, 0})
	// A zero-filled area: read to EOF it would be 16-byte empty events.
	zeroArea := append(bytes.Clone(tpm), make([]byte, 64)...)

	for _, tc := range []struct {
		name       string
		input      []byte
		wantEvents int
		wantKind   eventlog.Kind
		errOffset  int // -1: no error
		errEvent   int
	}{
		{"TPM log", tpm, len(bootEvents), eventlog.TPM, -1, 0},
		{"EV_PREBOOT_CERT at PCR 0", preboot, len(bootEvents) + 2, eventlog.TPM, -1, 0},
		{"zero-padded area", zeroArea, len(bootEvents), eventlog.TDX, -1, 0},
		// Not a padded area: read to EOF, 0xFF bytes are a bad record.
		{"padding, then more", append(append(bytes.Clone(tpm), bytes.Repeat([]byte{0xFF}, 8)...), 1), 0, 0, len(tpm), len(bootEvents) + 1},
		{"truncated", tpm[:len(tpm)-1], 0, 0, starts[len(bootEvents)], len(bootEvents)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, kind, err := eventlog.ParseDetect(tc.input)
			if tc.errOffset >= 0 {
				if err == nil {
					t.Fatalf("parsed %d events", len(l.Events))
				}
				checkFormatError(t, err, tc.errOffset, tc.errEvent, "")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Events) != tc.wantEvents || kind != tc.wantKind {
				t.Errorf("%d events of a %v log, want %d of a %v log", len(l.Events), kind, tc.wantEvents, tc.wantKind)
			}
		})
	}
}
