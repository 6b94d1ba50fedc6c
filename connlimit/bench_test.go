package connlimit_test

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/connlimit"
)

// BenchmarkAccept measures a connection's round trip (connect, accept,
// close) through a bare listener and through a connlimit.Listener, which
// adds SO_PEERCRED and the counting.
func BenchmarkAccept(b *testing.B) {
	for _, wrapped := range []bool{false, true} {
		name := "bare"
		if wrapped {
			name = "connlimit"
		}
		b.Run(name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "s")
			inner, err := net.Listen("unix", path)
			if err != nil {
				b.Fatal(err)
			}
			var l net.Listener = inner
			if wrapped {
				l = connlimit.New(inner, connlimit.Limits{PerUID: 128, Total: 1024, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			}
			defer l.Close()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			b.ResetTimer()
			for b.Loop() {
				c, err := net.Dial("unix", path)
				if err != nil {
					b.Fatal(err)
				}
				c.Read(make([]byte, 1)) // until the server has closed it
				c.Close()
			}
		})
	}
}
