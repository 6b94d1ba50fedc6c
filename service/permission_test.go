package service_test

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/asnobody"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// nobody is the unprivileged uid tests run children as, for whom file modes
// are an obstacle.
const nobody = asnobody.UID

// TestUnreadableSourceIsPermissionDenied needs a file its process cannot
// read. As root (CI), it runs itself again as nobody on a tree prepared here.
func TestUnreadableSourceIsPermissionDenied(t *testing.T) {
	root := os.Getenv("SERVICE_TEST_UNREADABLE_ROOT")
	if root == "" {
		root = unreadableTree(t)
		if os.Geteuid() == 0 {
			asnobody.Run(t, []string{"SERVICE_TEST_UNREADABLE_ROOT=" + root}, "TestUnreadableSourceIsPermissionDenied")
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
