package deployment

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog/ima"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	pb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// hostSecurityfs is where the host's securityfs is, and where the server's
// container sees it with ima.enabled: the container's own /sys has the
// directory, empty, and nothing can be created below it to mount on.
const hostSecurityfs = "/sys/kernel/security"

// TestIMAValues follows the path the server reads the IMA list from (its
// --root joined with hwsource.IMAListPath) to the host, and checks the
// identity that reads it, with ima.enabled and the values it meets.
func TestIMAValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sets  []string
		mount bool  // the host's securityfs is where the server reads the list
		root  bool  // the server runs as uid 0 (saas.enabled)
		group []int // the pod's supplementalGroups
	}{
		{name: "default", mount: true, group: []int{0}},
		{name: "off", sets: []string{"ima.enabled=false"}},
		{name: "with saas: root already, no group", sets: []string{"saas.enabled=true"}, mount: true, root: true},
		{name: "with saas and device groups", sets: []string{"saas.enabled=true", "liveRegisters.supplementalGroups={59}"}, mount: true, root: true, group: []int{59}},
		{name: "after the device groups", sets: []string{"liveRegisters.supplementalGroups={59}"}, mount: true, group: []int{59, 0}},
		{name: "group 0 given already", sets: []string{"liveRegisters.supplementalGroups={0,59}"}, mount: true, group: []int{0, 59}},
		{name: "primary gid 0", sets: []string{"securityContext.runAsGroup=0"}, mount: true},
		{name: "privileged for host devices", sets: []string{"liveRegisters.hostDevices=true"}, mount: true, group: []int{0}},
		{name: "fake root holds its own list", sets: []string{"root=/srv/fake-host"}},
		{name: "no securityfs", sets: []string{"hostPaths.securityfs="}},
		{name: "simulated", sets: []string{"hwsource=simulated", "nodeSelector=null"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := &render(t, tc.sets...).daemonSet(t).Spec.Template.Spec
			server := findContainer(t, spec.Containers, "eventlog-server")
			root, _ := flagValue(server.Args, "root")
			list := path.Join(root, hwsource.IMAListPath)

			m, rest := resolve(server, list)
			var v *volume
			if m != nil {
				v = findVolume(spec, m.Name)
			}
			fromHost := v != nil && v.HostPath != nil && path.Join(v.HostPath.Path, rest) == path.Join("/", hwsource.IMAListPath)
			if fromHost != tc.mount {
				t.Errorf("%s is the host's list: %v, want %v (mount %+v, volume %+v)", list, fromHost, tc.mount, m, v)
			}
			if tc.mount {
				if !m.ReadOnly || m.MountPath != hostSecurityfs || v.HostPath.Type != "Directory" {
					t.Errorf("securityfs mount %+v volume %+v: want the host's %s, read-only, at the same path", m, v.HostPath, hostSecurityfs)
				}
			}
			// Whatever else, the server gets nothing of the host's /sys
			// writable from this value.
			for _, vm := range server.VolumeMounts {
				if v := findVolume(spec, vm.Name); v != nil && v.HostPath != nil && strings.HasPrefix(v.HostPath.Path, hostSecurityfs) && !vm.ReadOnly {
					t.Errorf("the host's %s mounted writable", v.HostPath.Path)
				}
			}

			if got := spec.SecurityContext.SupplementalGroups; !slices.Equal(got, tc.group) {
				t.Errorf("supplementalGroups %v, want %v", got, tc.group)
			}
			// The list needs no capability and no uid: the server's
			// security context is what it is without the list.
			sc := server.SecurityContext
			off := &render(t, append(slices.Clone(tc.sets), "ima.enabled=false")...).daemonSet(t).Spec.Template.Spec
			if offSC := findContainer(t, off.Containers, "eventlog-server").SecurityContext; !reflect.DeepEqual(sc, offSC) {
				t.Errorf("server security context %+v, want the one without the list: %+v", sc, offSC)
			}
			if tc.root {
				if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
					t.Errorf("server security context %+v: want saas's, root", sc)
				}
			} else if sc.RunAsUser == nil || *sc.RunAsUser != 1000 || !isTrue(sc.RunAsNonRoot) || len(sc.Capabilities.Add) != 0 {
				t.Errorf("server security context %+v: want non-root uid 1000, no capability added", sc)
			}
			if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
				t.Errorf("server drops %v, want ALL", sc.Capabilities.Drop)
			}
		})
	}

	// The fake root's list is read from the fake root, read-only.
	spec := &render(t, "root=/srv/fake-host").daemonSet(t).Spec.Template.Spec
	server := findContainer(t, spec.Containers, "eventlog-server")
	if m, rest := resolve(server, path.Join("/srv/fake-host", hwsource.IMAListPath)); m == nil || m.MountPath != "/srv/fake-host" || rest != hwsource.IMAListPath || !m.ReadOnly {
		t.Errorf("a fake root's list resolves to %+v %q, want the root's read-only mount", m, rest)
	}
}

func TestIMASchema(t *testing.T) {
	for _, set := range []string{"ima.enable=true", "ima.enabled=yes", "ima=true"} {
		if _, err := helm(t, "template", release, chartDir, "--set", set); err == nil || !strings.Contains(err.Error(), "ima") {
			t.Errorf("--set %s: error %v, want one naming ima", set, err)
		}
	}
	for _, set := range []string{"ima.enabled=false", "saas.enabled=true"} {
		out, err := helm(t, "lint", "--strict", chartDir, "--set", set)
		if err != nil || !strings.Contains(out, "0 chart(s) failed") {
			t.Errorf("helm lint --set %s: %v\n%s", set, err, out)
		}
	}
}

// testIMAList runs the image as the chart does with ima.enabled: the host's
// securityfs read-only at /sys/kernel/security, uid 1000 in group 0, no
// capability. It serves a 0440 root:root list and what is appended to it;
// without the group the same list is PERMISSION_DENIED, and without the
// mount (the container's own /sys) FAILED_PRECONDITION. The list here is a
// file, not securityfs, which the host machine may not have: the kernel's
// checks are the same generic ones (its files are root:root 0440, opened
// without a capability check).
func testIMAList(t *testing.T, image string) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to lay out a root-only list")
	}
	list := readBytes(t, filepath.Join(repoRoot(t), "eventlog/ima/testdata/handmade/mixed-le.bin"))
	parsed, err := ima.Parse(list, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := parsed.Len()
	half := n / 2
	cut := int(parsed.Entry(half + 1).Offset)

	// The host's securityfs: its root and ima directory 0755, the list
	// root's only.
	securityfs := t.TempDir()
	if err := os.Chmod(securityfs, 0o755); err != nil {
		t.Fatal(err)
	}
	listPath := filepath.Join(securityfs, "ima", "binary_runtime_measurements")
	writeHostFile(t, listPath, list[:cut], 0o440, 0)

	start := func(t *testing.T, opts ...string) (name, sock, outDir string) {
		sockDir, outDir := serverDir(t), serverDir(t)
		name = startContainer(t, image, append([]string{
			"--user=1000:1000", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges",
			"-v", sockDir + ":" + ctrSocketDir,
			"-v", outDir + ":" + ctrOutputDir,
		}, opts...), "--hwsource=host", "--root=/", "--socket="+ctrSocketDir+"/eventlog.sock", "--output-dir="+ctrOutputDir)
		return name, filepath.Join(sockDir, "eventlog.sock"), outDir
	}
	mount := "-v=" + securityfs + ":" + hostSecurityfs + ":ro"
	req := &pb.GetEventlogRequest{EventlogCategory: pb.CATEGORY_IMA_EVENTLOG, Format: pb.FORMAT_TCG_RAW}

	t.Run("chart", func(t *testing.T) {
		name, sock, outDir := start(t, mount, "--group-add=0")
		client := pb.NewEventlogClient(waitServing(t, name, sock))
		reply, data := getEventlog(t, client, outDir, req)
		if int(reply.TotalEvents) != half || string(data) != string(list[:cut]) {
			t.Errorf("%d entries, %d bytes; want the list's %d entries, %d bytes", reply.TotalEvents, len(data), half, cut)
		}
		if reply.Simulated || !strings.HasPrefix(reply.Source, hostSecurityfs+"/ima/") {
			t.Errorf("source %q simulated %v: want the host's list under %s", reply.Source, reply.Simulated, hostSecurityfs)
		}
		// The list grows; the server reads on through the mount.
		f, err := os.OpenFile(listPath, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(list[cut:]); err != nil {
			t.Fatal(err)
		}
		f.Close()
		reply, data = getEventlog(t, client, outDir, req)
		if int(reply.TotalEvents) != n || string(data) != string(list) {
			t.Errorf("after the append: %d entries, %d bytes; want %d entries, %d bytes", reply.TotalEvents, len(data), n, len(list))
		}
	})

	for _, tc := range []struct {
		name string
		opts []string
		code codes.Code
		says string
	}{
		{"without group 0", []string{mount}, codes.PermissionDenied, "permission denied"},
		{"without the mount", []string{"--group-add=0"}, codes.FailedPrecondition, "no IMA measurement list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// With no source it can serve the server is NOT_SERVING: ask
			// until it answers.
			name, sock, _ := start(t, tc.opts...)
			conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			client := pb.NewEventlogClient(conn)
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err = client.GetEventlog(ctx, req)
				cancel()
				if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
					break
				}
				if running, _ := docker("inspect", "--format={{.State.Running}}", name); strings.TrimSpace(running) != "true" {
					t.Fatal("the server's container stopped")
				}
			}
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("GetEventlog: %v, want %v saying %q", err, tc.code, tc.says)
			}
		})
	}

	// The list's directory alone cannot be mounted where the server reads
	// it: the container's /sys has no ima directory, and none can be made.
	out, err := docker("run", "--rm", "-v="+filepath.Dir(listPath)+":"+hostSecurityfs+"/ima:ro", image, "help")
	if err == nil {
		t.Errorf("the ima directory alone mounted at %s/ima: the chart could mount less than all of securityfs\n%s", hostSecurityfs, out)
	}
}
