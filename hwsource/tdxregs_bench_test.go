package hwsource_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
)

// BenchmarkTDXRegistersFromTDREPORT: one live read on a 6.8 node, here
// through the simulated device's Unix socket (connect, request, TDREPORT,
// parse); the real ioctl skips the socket.
func BenchmarkTDXRegistersFromTDREPORT(b *testing.B) {
	root, td := tree68(b)
	go td.ServeReports(listen(b, filepath.Join(root, hwsource.TDXGuestDevicePath)))
	src := hwsource.NewTDX(root)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Registers(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTDXRegistersFromSysfs: one live read on a 6.16 node (five
// files), here a tree's regular files.
func BenchmarkTDXRegistersFromSysfs(b *testing.B) {
	root := b.TempDir()
	if _, err := simulatorHostTree(root); err != nil {
		b.Fatal(err)
	}
	src := hwsource.NewTDX(root)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Registers(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
