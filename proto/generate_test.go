package eventlogpb_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates the Go code from eventlog.proto with
// the pinned plugins and fails when the committed files differ: run
// `make proto` and commit the result.
func TestGeneratedCodeIsFresh(t *testing.T) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Skip("protoc not installed (apt package protobuf-compiler); cannot check the generated code")
	}
	plugin := func(name string) string {
		out, err := exec.Command("go", "tool", "-modfile=../tools/go.mod", "-n", name).Output()
		if err != nil {
			t.Fatalf("locating %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	dir := t.TempDir()
	cmd := exec.Command(protoc,
		"--plugin=protoc-gen-go="+plugin("protoc-gen-go"),
		"--plugin=protoc-gen-go-grpc="+plugin("protoc-gen-go-grpc"),
		"--go_out="+dir, "--go_opt=paths=source_relative",
		"--go-grpc_out="+dir, "--go-grpc_opt=paths=source_relative",
		"proto/eventlog.proto")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	for _, f := range []string{"eventlog.pb.go", "eventlog_grpc.pb.go"} {
		want, err := os.ReadFile(filepath.Join(dir, "proto", f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("proto/%s is stale: run `make proto` and commit the result", f)
		}
	}
}
