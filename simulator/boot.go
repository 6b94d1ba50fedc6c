package simulator

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/simulator/internal/efi"
)

// platform says which simulated log a boot step belongs in.
type platform uint8

const (
	onTPM  platform = 1 << iota // a UEFI machine with a TPM
	onTDX                       // a TD booted by TDVF (OVMF for TDX)
	onBoth = onTPM | onTDX
)

// step is one measurement the simulated firmware and boot chain make, in
// PC Client PCR terms; the TDX log maps the PCR to a CC measurement register
// as TDVF does.
type step struct {
	pcr  uint32
	typ  eventlog.EventType
	data []byte
	// measured is what the event's digest is the hash of: the event data
	// itself, or the object the data only describes (an image, a file, a
	// firmware volume). Nil for EV_NO_ACTION, which measures nothing.
	measured []byte
}

// script builds the boot sequence of one platform. Everything it generates
// comes from rng, so a seed always gives the same log.
type script struct {
	on    platform
	rng   *rand.Rand
	steps []step
	// arena holds the bytes of events and of what they measure: a 1 MiB
	// log's thousands of small events are then a few allocations, not
	// several each (in a cold start, every fresh page costs).
	arena []byte
}

// concat returns the concatenation of parts, in the arena.
func (s *script) concat(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := s.alloc(n)[:0]
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// alloc returns n bytes of the arena, capped: appending to them copies.
func (s *script) alloc(n int) []byte {
	if cap(s.arena)-len(s.arena) < n {
		s.arena = make([]byte, 0, max(n, 64<<10))
	}
	start := len(s.arena)
	s.arena = s.arena[:start+n]
	return s.arena[start : start+n : start+n]
}

func (s *script) add(on platform, pcr uint32, typ eventlog.EventType, data, measured []byte) {
	if s.on&on != 0 {
		s.steps = append(s.steps, step{pcr, typ, data, measured})
	}
}

// hashed adds an event whose digest is the hash of its own data.
func (s *script) hashed(on platform, pcr uint32, typ eventlog.EventType, data []byte) {
	s.add(on, pcr, typ, data, data)
}

// content stands in for the bytes of something measured that the log does
// not hold (an image, a file): only its digest reaches the log.
func (s *script) content(what string) []byte {
	b := s.alloc(len(what) + 32)
	copy(b, what)
	s.fill(b[len(what):])
	return b
}

func (s *script) random(n int) []byte {
	b := make([]byte, n)
	s.fill(b)
	return b
}

// fill fills b from rng, 8 bytes a draw.
func (s *script) fill(b []byte) {
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], s.rng.Uint64())
		copy(b[i:], w[:])
	}
}

func (s *script) guid() efi.GUID {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], s.rng.Uint64())
	binary.LittleEndian.PutUint64(b[8:], s.rng.Uint64())
	return efi.GUIDFromBytes(b)
}

func (s *script) variable(on platform, pcr uint32, typ eventlog.EventType, vendor efi.GUID, name string, value []byte) {
	data := efi.AppendVariableData(nil, vendor, name, value)
	if typ == eventlog.EvEFIVariableBoot || typ == eventlog.EvEFIVariableBoot2 {
		// Boot variables are measured by their value alone (PFP 10.4.4).
		s.add(on, pcr, typ, data, value)
		return
	}
	s.hashed(on, pcr, typ, data)
}

// ipl adds an EV_IPL event as GRUB and shim write them: a NUL-terminated
// string describing what was measured.
func (s *script) ipl(pcr uint32, text string, measured []byte) {
	s.add(onBoth, pcr, eventlog.EvIPL, s.concat(text, "\x00"), measured)
}

// grubCommand adds an EV_IPL event for a GRUB command or kernel command line
// in PCR8: GRUB hashes the text after the "grub_cmd: " or "kernel_cmdline: "
// prefix, without the NUL it logs.
func (s *script) grubCommand(prefix, text string) {
	data := s.concat(prefix, " ", text, "\x00")
	s.add(onBoth, 8, eventlog.EvIPL, data, data[len(prefix)+1:len(data)-1])
}

func (s *script) image(typ eventlog.EventType, pcr uint32, path []byte, size uint64, what string) {
	location := 0x7c000000 + s.rng.Uint64N(0x1000)*0x1000 + 0x18
	data := efi.AppendImageLoadEvent(nil, location, size, 0, path)
	s.add(onBoth, pcr, typ, data, s.content(what))
}

func (s *script) action(pcr uint32, text string) {
	s.hashed(onBoth, pcr, eventlog.EvEFIAction, []byte(text))
}

// machine is what the simulated boot measures: its disk, keys and kernel.
type machine struct {
	keys          secureBootKeys
	owner         efi.GUID // owner of the simulated Secure Boot signatures
	disk          efi.Disk
	kernel        string
	initrd        string
	cmdline       string
	scsiPrefix    efi.DevicePath
	espPath, root efi.DevicePath
}

func newMachine(rng *rand.Rand, seed int64, s *script) (*machine, error) {
	keys, err := newSecureBootKeys(rng, seed)
	if err != nil {
		return nil, err
	}
	m := &machine{keys: keys, owner: s.guid()}
	const sectors = 20971520 // a 10 GiB disk
	esp := efi.Partition{Type: efi.ESPPartitionType, ID: s.guid(), First: 2048, Last: 264191, Name: "EFI System Partition"}
	root := efi.Partition{Type: efi.LinuxFSPartitionType, ID: s.guid(), First: 264192, Last: sectors - 34, Name: "root"}
	m.disk = efi.Disk{ID: s.guid(), Sectors: sectors, Partitions: []efi.Partition{esp, root}}
	version := fmt.Sprintf("6.12.%d-%d-amd64", rng.IntN(60), 1+rng.IntN(30))
	m.kernel = "/boot/vmlinuz-" + version
	m.initrd = "/boot/initrd.img-" + version
	rootUUID := s.guid()
	m.cmdline = fmt.Sprintf("%s root=UUID=%s ro console=ttyS0,115200n8 quiet", m.kernel, rootUUID)
	m.scsiPrefix = efi.DevicePath(nil).ACPI(0x0a03, 0).PCI(3, 0).SCSI(1, 0)
	m.espPath = m.scsiPrefix.HardDrive(1, esp.First, esp.Last-esp.First+1, esp.ID)
	m.root = m.scsiPrefix.HardDrive(2, root.First, root.Last-root.First+1, root.ID)
	return m, nil
}

// minEvents is how many events the fixed boot sequence of a platform has;
// a log has at least that many.
func minEvents(on platform) int {
	steps, err := bootSteps(on, 0, -1)
	if err != nil {
		panic(err) // the fixed sequence does not depend on input
	}
	return len(steps)
}

// bootSteps returns the measurements of a simulated boot with the given
// number of events: firmware, Secure Boot configuration, boot variables,
// separators, the GPT, shim, GRUB and its commands, the kernel and initrd,
// ExitBootServices. The GRUB part grows to reach the count; events < 0 means
// the fixed sequence alone.
func bootSteps(on platform, seed int64, events int) ([]step, error) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x63636e70)) // stream "ccnp"
	s := &script{on: on, rng: rng}
	m, err := newMachine(rng, seed, s)
	if err != nil {
		return nil, err
	}
	s.firmware(m)
	s.bootManager(m)
	s.shimAndGrub(m)
	tail := &script{on: on, rng: rng}
	tail.kernel(m)
	if events >= 0 {
		fill := events - len(s.steps) - len(tail.steps)
		if fill < 0 {
			return nil, fmt.Errorf("the simulated boot has %d fixed events, %d were asked", len(s.steps)+len(tail.steps), events)
		}
		s.steps = slices.Grow(s.steps, fill+len(tail.steps))
		s.grubScript(m, fill)
	}
	return append(s.steps, tail.steps...), nil
}

// firmware adds what the firmware measures before the boot manager runs.
func (s *script) firmware(m *machine) {
	// A TPM's log records the locality TPM2_Startup came from; the
	// go-tpm-tools simulator starts at locality 0.
	s.add(onTPM, 0, eventlog.EvNoAction, eventlog.StartupLocalityData(0), nil)
	s.hashed(onTPM, 0, eventlog.EvSCRTMVersion, efi.AppendUTF16(nil, "1.00", true))
	s.add(onTPM, 0, eventlog.EvEFIPlatformFirmwareBlob, efi.AppendFirmwareBlob(nil, 0x820000, 0xe0000), s.content("PEIFV"))
	s.add(onTPM, 0, eventlog.EvEFIPlatformFirmwareBlob, efi.AppendFirmwareBlob(nil, 0x900000, 0xc00000), s.content("DXEFV"))

	// TDVF measures the TD HOB list and the configuration firmware volume
	// into RTMR0; the rest of the firmware is in MRTD, which has no log.
	s.add(onTDX, 1, eventlog.EvEFIHandoffTables2,
		efi.AppendHandoffTables2(nil, "TdxTable\x00", []efi.ConfigTable{{Vendor: efi.MustGUID("93bb96af-b9f2-4eb8-9462-e0ba74564236"), Address: 0x809000}}),
		s.content("TD HOB"))
	s.add(onTDX, 1, eventlog.EvEFIPlatformFirmwareBlob2,
		efi.AppendFirmwareBlob2(nil, "Fv(48DB5E17-707C-472D-91CD-1613E7EF51B0)\x00", 0xffe00000, 0x20000),
		s.content("CFV"))

	// Secure Boot policy, PCR7 (RTMR0).
	dbx := make([]efi.Signature, 3+s.rng.IntN(5))
	for i := range dbx {
		dbx[i] = efi.Signature{Owner: m.owner, Data: s.random(32)} // SHA-256 of a revoked image
	}
	x509 := func(der []byte) []byte {
		return efi.AppendSignatureList(nil, efi.CertX509, []efi.Signature{{Owner: m.owner, Data: der}})
	}
	s.variable(onBoth, 7, eventlog.EvEFIVariableDriverConfig, efi.GlobalVariable, "SecureBoot", []byte{1})
	s.variable(onBoth, 7, eventlog.EvEFIVariableDriverConfig, efi.GlobalVariable, "PK", x509(m.keys.pk))
	s.variable(onBoth, 7, eventlog.EvEFIVariableDriverConfig, efi.GlobalVariable, "KEK", x509(m.keys.kek))
	s.variable(onBoth, 7, eventlog.EvEFIVariableDriverConfig, efi.ImageSecurityDatabase, "db", x509(m.keys.db))
	s.variable(onBoth, 7, eventlog.EvEFIVariableDriverConfig, efi.ImageSecurityDatabase, "dbx",
		efi.AppendSignatureList(nil, efi.CertSHA256, dbx))
	s.hashed(onBoth, 7, eventlog.EvSeparator, make([]byte, 4))

	s.add(onTPM, 1, eventlog.EvEFIHandoffTables,
		efi.AppendHandoffTables(nil, []efi.ConfigTable{{Vendor: efi.SMBIOS3Table, Address: 0x7f8d6000}}),
		s.content("SMBIOS"))
	// OVMF measures the QEMU fw_cfg items it acts on; TDVF puts them in RTMR0.
	s.add(onTDX, 1, eventlog.EvPlatformConfigFlags, []byte("etc/table-loader\x00"), s.content("table-loader"))
}

// bootManager adds the boot variables and ReadyToBoot.
func (s *script) bootManager(m *machine) {
	shim := m.espPath.File(`\EFI\debian\shimx64.efi`).End()
	uiApp := efi.DevicePath(nil).Fv(efi.MustGUID("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1")).FvFile(efi.MustGUID("462caa21-7614-4503-836e-8ab6f4662331")).End()
	s.variable(onBoth, 1, eventlog.EvEFIVariableBoot, efi.GlobalVariable, "BootOrder", []byte{1, 0, 0, 0})
	s.variable(onBoth, 1, eventlog.EvEFIVariableBoot, efi.GlobalVariable, "Boot0001", efi.AppendLoadOption(nil, true, "debian", shim, nil))
	s.variable(onBoth, 1, eventlog.EvEFIVariableBoot, efi.GlobalVariable, "Boot0000", efi.AppendLoadOption(nil, false, "UiApp", uiApp, nil))
	s.action(4, "Calling EFI Application from Boot Option")
	for pcr := range uint32(7) {
		// PCR0 maps to MRTD on TDX, which has no log: TDVF logs no
		// separator for it.
		on := onBoth
		if pcr == 0 {
			on = onTPM
		}
		s.hashed(on, pcr, eventlog.EvSeparator, make([]byte, 4))
	}
}

// shimAndGrub adds the boot disk, shim and GRUB up to its configuration file.
func (s *script) shimAndGrub(m *machine) {
	s.hashed(onBoth, 5, eventlog.EvEFIGPTEvent, efi.AppendGPTEvent(nil, m.disk))
	s.image(eventlog.EvEFIBootServicesApp, 4, m.espPath.File(`\EFI\debian\shimx64.efi`).End(), 0xf0000+s.rng.Uint64N(0x10000), "shim")
	s.hashed(onBoth, 7, eventlog.EvEFIVariableAuthority,
		efi.AppendVariableData(nil, efi.ImageSecurityDatabase, "db", efi.AppendSignatureData(nil, efi.Signature{Owner: m.owner, Data: m.keys.db})))
	s.hashed(onBoth, 7, eventlog.EvEFIVariableAuthority,
		efi.AppendVariableData(nil, efi.ShimLock, "SbatLevel", []byte("sbat,1,2024010900\nshim,4\ngrub,3\ngrub.debian,4\n")))
	s.ipl(14, "MokList", s.content("MokList"))
	s.ipl(14, "MokListX", s.content("MokListX"))
	s.hashed(onBoth, 7, eventlog.EvEFIVariableAuthority, efi.AppendVariableData(nil, efi.ShimLock, "MokListTrusted", []byte{1}))
	s.ipl(14, "MokListTrusted", []byte{1})
	s.image(eventlog.EvEFIBootServicesApp, 4, m.espPath.File(`\EFI\debian\grubx64.efi`).End(), 0x280000+s.rng.Uint64N(0x10000), "grub")
	s.ipl(9, "(hd0,gpt1)/EFI/debian/grub.cfg", s.content("grub.cfg"))
}

var grubModules = []string{
	"part_gpt", "ext2", "fat", "gzio", "normal", "echo", "linux", "video", "all_video",
	"test", "search", "search_fs_uuid", "configfile", "efi_gop", "font", "gfxterm",
}

// grubScript adds n events of GRUB running its configuration: commands in
// PCR8, modules and files it reads in PCR9.
func (s *script) grubScript(m *machine, n int) {
	rootUUID := m.disk.Partitions[1].ID.String()
	commands := []func(i int) string{
		func(int) string { return "insmod " + grubModules[s.rng.IntN(len(grubModules))] },
		func(int) string { return "search --no-floppy --fs-uuid --set=root " + rootUUID },
		func(i int) string { return fmt.Sprintf("set timeout=%d", i%10) },
		func(int) string { return "[ -s (hd0,gpt2)/boot/grub/grubenv ]" },
		func(int) string { return "load_env" },
		func(i int) string { return fmt.Sprintf("set menu_color_normal=cyan/blue entry=%d", i) },
		func(int) string {
			return "echo Loading Linux " + strings.TrimPrefix(m.kernel, "/boot/vmlinuz-") + " ..."
		},
	}
	for i := range n {
		if s.rng.IntN(4) == 0 {
			mod := grubModules[s.rng.IntN(len(grubModules))]
			s.ipl(9, "(hd0,gpt2)/boot/grub/x86_64-efi/"+mod+".mod", s.content(mod))
			continue
		}
		s.grubCommand("grub_cmd:", commands[s.rng.IntN(len(commands))](i))
	}
}

// kernel adds GRUB loading the kernel and initrd, the kernel's EFI stub
// measuring its command line and initrd, and ExitBootServices.
func (s *script) kernel(m *machine) {
	s.grubCommand("grub_cmd:", "linux "+m.cmdline)
	s.ipl(9, m.kernel, s.content("kernel"))
	s.grubCommand("kernel_cmdline:", m.cmdline)
	s.grubCommand("grub_cmd:", "initrd "+m.initrd)
	initrd := s.content("initrd")
	s.ipl(9, m.initrd, initrd)
	s.image(eventlog.EvEFIBootServicesApp, 4, m.root.File(strings.ReplaceAll(m.kernel, "/", `\`)).End(), 0x1000000+s.rng.Uint64N(0x100000), "kernel")
	loadOptions := efi.AppendUTF16(nil, m.cmdline[len(m.kernel)+1:], true)
	s.add(onBoth, 9, eventlog.EvEventTag, efi.AppendTaggedEvent(nil, efi.LinuxLoadOptionsTag, []byte("LOADED_IMAGE::LoadOptions")), loadOptions)
	s.add(onBoth, 9, eventlog.EvEventTag, efi.AppendTaggedEvent(nil, efi.LinuxInitrdTag, []byte("Linux initrd")), initrd)
	s.action(5, "Exit Boot Services Invocation")
	s.action(5, "Exit Boot Services Returned with Success")
}
