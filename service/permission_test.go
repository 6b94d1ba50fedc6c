package service_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// nobody is the uid the permission test drops to when run as root, for whom
// file modes are no obstacle.
const nobody = 65534

// TestUnreadableSourceIsPermissionDenied needs a file its process cannot
// read. As root (CI), it runs itself again as nobody on a tree prepared here.
func TestUnreadableSourceIsPermissionDenied(t *testing.T) {
	root := os.Getenv("SERVICE_TEST_UNREADABLE_ROOT")
	if root == "" {
		root = unreadableTree(t)
		if os.Geteuid() == 0 {
			runAsNobody(t, root)
			return
		}
	}
	s := start(t, root, nil)
	for _, tc := range []struct {
		cat  eventlogpb.CATEGORY
		path string
	}{
		{eventlogpb.CATEGORY_TDX_EVENTLOG, "sys/firmware/acpi/tables/CCEL"},
		{eventlogpb.CATEGORY_TPM_EVENTLOG, "sys/kernel/security/tpm0/binary_bios_measurements"},
	} {
		_, err := s.get(t, &eventlogpb.GetEventlogRequest{EventlogCategory: tc.cat})
		wantCode(t, err, codes.PermissionDenied, filepath.Join(root, tc.path), "root")
	}
}

// unreadableTree makes a host tree, readable by everyone but its log files.
func unreadableTree(t *testing.T) string {
	h := newHostTree(t, "ovmf-64k", "tpm_glinux-alex.bin")
	for dir := h.root; dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
		os.Chmod(dir, 0o755) // t.TempDir's directories are private
	}
	for _, p := range []string{"sys/firmware/acpi/tables/CCEL", hostData, "sys/kernel/security/tpm0/binary_bios_measurements"} {
		if err := os.Chmod(filepath.Join(h.root, p), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	return h.root
}

const hostData = "sys/firmware/acpi/tables/data/CCEL"

func runAsNobody(t *testing.T, root string) {
	// The test binary lives in a private build directory: copy it out.
	bin := filepath.Join(t.TempDir(), "service.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(bin), 0o755)
	// A short directory: socket paths are limited to 108 bytes.
	tmp, err := os.MkdirTemp("", "perm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	os.Chmod(tmp, 0o777)
	wd, _ := os.Getwd()
	cmd := exec.Command(bin, "-test.run", "^TestUnreadableSourceIsPermissionDenied$", "-test.v")
	cmd.Dir = wd
	cmd.Env = append(os.Environ(), "SERVICE_TEST_UNREADABLE_ROOT="+root, "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as uid %d: %v\n%s", nobody, err, out)
	}
	t.Logf("ran as uid %d:\n%s", nobody, out)
}
