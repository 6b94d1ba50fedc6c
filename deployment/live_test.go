package deployment

import (
	"slices"
	"strings"
	"testing"
)

// deviceVolumes lists the server's hostPath mounts of host devices
// (mount path -> host path), and checks each is a CharDevice hostPath.
func deviceVolumes(t *testing.T, spec *podSpec, c *container) map[string]string {
	t.Helper()
	devices := map[string]string{}
	for _, m := range c.VolumeMounts {
		v := findVolume(spec, m.Name)
		if v == nil || v.HostPath == nil || !strings.HasPrefix(v.HostPath.Path, "/dev/") {
			continue
		}
		if v.HostPath.Type != "CharDevice" {
			t.Errorf("%s is a hostPath of type %q, want CharDevice", v.HostPath.Path, v.HostPath.Type)
		}
		devices[m.MountPath] = v.HostPath.Path
	}
	return devices
}

// TestLiveRegisters: the liveRegisters values give the server the devices
// the live registers are read through, and only the privilege that takes.
func TestLiveRegisters(t *testing.T) {
	const resource = "tdx.intel.com/tdx-guest"
	for _, tc := range []struct {
		name       string
		sets       []string
		devices    map[string]string
		resource   bool
		privileged bool
		groups     []int
	}{
		// Linux 6.16+ needs nothing: the container's /sys shows the RTMRs.
		{name: "default", devices: map[string]string{}},
		{name: "device plugin", sets: []string{"liveRegisters.tdxGuestResource=" + resource}, devices: map[string]string{}, resource: true},
		{name: "host devices", sets: []string{"liveRegisters.hostDevices=true"},
			devices: map[string]string{"/dev/tdx_guest": "/dev/tdx_guest"}, privileged: true},
		{name: "host devices with a TPM and its group", sets: []string{"liveRegisters.hostDevices=true", "liveRegisters.tpmDevice=/dev/tpmrm0", "liveRegisters.supplementalGroups={59}"},
			devices: map[string]string{"/dev/tdx_guest": "/dev/tdx_guest", "/dev/tpmrm0": "/dev/tpmrm0"}, privileged: true, groups: []int{59}},
		{name: "the plugin's device, the host's TPM", sets: []string{"liveRegisters.hostDevices=true", "liveRegisters.tpmDevice=/dev/tpmrm0", "liveRegisters.tdxGuestResource=" + resource},
			devices: map[string]string{"/dev/tpmrm0": "/dev/tpmrm0"}, resource: true, privileged: true},
		{name: "the plugin's device only: nothing privileged", sets: []string{"liveRegisters.hostDevices=true", "liveRegisters.tdxGuestResource=" + resource},
			devices: map[string]string{}, resource: true},
		{name: "off", sets: []string{"liveRegisters.enabled=false", "liveRegisters.hostDevices=true", "liveRegisters.tdxGuestResource=" + resource, "liveRegisters.supplementalGroups={59}"},
			devices: map[string]string{}},
		{name: "simulated hardware", sets: []string{"hwsource=simulated", "liveRegisters.hostDevices=true", "liveRegisters.tdxGuestResource=" + resource},
			devices: map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Without the IMA list's group 0 (TestIMAValues).
			ds := render(t, append([]string{"ima.enabled=false"}, tc.sets...)...).daemonSet(t)
			spec := &ds.Spec.Template.Spec
			server := findContainer(t, spec.Containers, "eventlog-server")
			devices := deviceVolumes(t, spec, server)
			if len(devices) != len(tc.devices) {
				t.Errorf("device mounts %v, want %v", devices, tc.devices)
			}
			for at, host := range tc.devices {
				if devices[at] != host {
					t.Errorf("%s: mounted from %q, want %s", at, devices[at], host)
				}
			}
			if got := server.Resources.Limits[resource]; (got == "1") != tc.resource {
				t.Errorf("limit of %s: %q, want requested: %v", resource, got, tc.resource)
			}
			sc := server.SecurityContext
			if isTrue(sc.Privileged) != tc.privileged {
				t.Errorf("privileged: %v, want %v", isTrue(sc.Privileged), tc.privileged)
			}
			// Privileged or not, the server keeps its uid and no capabilities.
			if sc.RunAsUser == nil || *sc.RunAsUser != 1000 || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) != 0 {
				t.Errorf("server security context %+v: want uid 1000, every capability dropped", sc)
			}
			if !tc.privileged && (sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation) {
				t.Error("server may escalate privileges")
			}
			if !slices.Equal(spec.SecurityContext.SupplementalGroups, tc.groups) {
				t.Errorf("supplementalGroups %v, want %v", spec.SecurityContext.SupplementalGroups, tc.groups)
			}
		})
	}
}

func TestLiveRegistersSchema(t *testing.T) {
	for _, set := range []string{
		"liveRegisters.tdxGuestDevice=dev/tdx_guest",
		"liveRegisters.tpmDevice=tpmrm0",
		"liveRegisters.tdxGuestResource=not a resource",
		"liveRegisters.supplementalGroups={-1}",
		"liveRegisters.hostDevice=true",
	} {
		if _, err := helm(t, "template", release, chartDir, "--set", set); err == nil || !strings.Contains(err.Error(), "liveRegisters") {
			t.Errorf("--set %s: error %v, want one naming liveRegisters", set, err)
		}
	}
}
