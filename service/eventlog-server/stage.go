package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/boundedread"
	"github.com/ccnp-eventlog/ccnp-eventlog/internal/dirfd"
)

// The stage subcommand runs as the DaemonSet's init container. The kernel
// makes the firmware event logs readable by root only (CCEL 0400,
// binary_bios_measurements 0440), while the server runs as uid 1000. Rather
// than running the server as root, a short-lived root container copies the
// logs into a pod-local directory, hands the copies to the server's uid, and
// prepares the host directories the server writes to. The server then finds
// the copies under <root>/run/firmware, where it looks when it cannot read
// the files in /sys: absent, or (the case here) readable by root only.

func init() {
	commands["stage"] = command{
		summary: "copy the root-only firmware event logs where the server can read them (init container)",
		run:     runStage,
	}
}

// stagedFile is one root-only firmware file: where it is under a host root
// (--from), and where the server looks for its copy under its own root.
type stagedFile struct {
	what string
	from string
	// to is below hwsource.StagedDir, which --to stands for.
	to string
}

// stagedFiles are the files the server reads from /sys, taken from the
// paths the host backends read, so the copies land where they look.
var stagedFiles = []stagedFile{
	{"CCEL ACPI table", hwsource.CCELTablePath, hwsource.StagedCCELTablePath},
	{"CCEL log area", hwsource.CCELDataPath, hwsource.StagedCCELDataPath},
	{"TPM event log", hwsource.TPMLogPath, hwsource.StagedTPMLogPath},
}

// stageOptions are the stage subcommand's flags.
type stageOptions struct {
	from string
	to   string
	uid  int // -1: keep the owner (the caller)
	gid  int // -1: keep the group
	mode fs.FileMode
	// ownDirs are directories (the hostPath output and socket dirs) to
	// create if needed and hand over to uid:gid, mode 0755 so that other
	// pods' users can reach the socket and read the files.
	ownDirs []string
}

// ownedDirMode lets the server (owner) write and everyone else traverse and
// read: client pods run as arbitrary uids.
const ownedDirMode fs.FileMode = 0o755

func runStage(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("command", "stage")
	opts, err := parseStageFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "eventlog-server stage: %v\n", err)
		return 2
	}
	if err := stage(opts, log); err != nil {
		log.Error("staging failed", "err", err)
		return 1
	}
	return 0
}

func parseStageFlags(args []string) (stageOptions, error) {
	opts := stageOptions{}
	fset := newFlagSet("stage", "eventlog-server stage [flags]\n\n"+
		"Copies the firmware event logs that only root can read (CCEL table and log area,\n"+
		"TPM binary_bios_measurements) from a host root to a staging directory, owned by\n"+
		"--uid/--gid with --mode. Absent files are skipped. Meant for an init container\n"+
		"running as root; the server then reads the copies under /run/firmware.")
	fset.StringVar(&opts.from, "from", "/", "host root the firmware files are read from (e.g. where the host's /sys is mounted under)")
	fset.StringVar(&opts.to, "to", "/"+hwsource.StagedDir, "staging directory the copies are written to")
	fset.IntVar(&opts.uid, "uid", -1, "owner of the copies and of every --own-dir (-1: keep the caller's)")
	fset.IntVar(&opts.gid, "gid", -1, "group of the copies and of every --own-dir (-1: keep the caller's)")
	mode := fset.String("mode", "0400", "permission bits of the copies, in octal")
	fset.Func("own-dir", "directory to create if needed and give to --uid/--gid with mode 0755, e.g. a hostPath the server writes to (repeatable)", func(s string) error {
		if s == "" {
			return errors.New("empty path")
		}
		opts.ownDirs = append(opts.ownDirs, s)
		return nil
	})
	if err := parseFlags(fset, args); err != nil {
		return opts, err
	}
	if fset.NArg() > 0 {
		return opts, fmt.Errorf("unexpected argument %q (all options are flags)", fset.Arg(0))
	}
	m, err := strconv.ParseUint(*mode, 8, 32)
	if err != nil || m > 0o777 {
		return opts, fmt.Errorf("--mode %q: want octal permission bits such as 0400 or 0444", *mode)
	}
	opts.mode = fs.FileMode(m)
	if opts.uid < -1 || opts.gid < -1 {
		return opts, fmt.Errorf("--uid %d / --gid %d: want an id >= 0, or -1 to keep the caller's", opts.uid, opts.gid)
	}
	if opts.from == "" || opts.to == "" {
		return opts, errors.New("--from and --to must not be empty")
	}
	if len(opts.ownDirs) > 0 && opts.uid == -1 && opts.gid == -1 {
		return opts, errors.New("--own-dir needs --uid and/or --gid: whom to give the directory to")
	}
	return opts, nil
}

// stage prepares the owned directories, then copies every firmware file
// that exists. A missing file is normal (a TDX guest without a vTPM, a TPM
// machine that is not a TDX guest) and only logged; anything else that goes
// wrong stops the pod from starting with an error naming the path.
func stage(opts stageOptions, log *slog.Logger) error {
	for _, dir := range opts.ownDirs {
		if err := ownDir(dir, opts.uid, opts.gid); err != nil {
			return err
		}
		log.Info("directory ready", "path", dir, "uid", opts.uid, "gid", opts.gid, "mode", fmt.Sprintf("%04o", ownedDirMode))
	}
	staged := 0
	for _, f := range stagedFiles {
		src := filepath.Join(opts.from, f.from)
		dst := filepath.Join(opts.to, strings.TrimPrefix(f.to, hwsource.StagedDir))
		n, err := copyFile(src, dst, opts)
		if errors.Is(err, fs.ErrNotExist) {
			log.Info("skipped: not present on this node", "file", f.what, "path", src)
			continue
		}
		if err != nil {
			return err
		}
		log.Info("staged", "file", f.what, "from", src, "to", dst, "bytes", n)
		staged++
	}
	if staged == 0 {
		log.Warn("no firmware event log found: the server will have no host log to serve", "from", opts.from)
	}
	return nil
}

// copyFile copies src to dst through a temporary file and a rename, so a
// rerun (init containers restart) replaces an earlier copy that root may no
// longer be allowed to open for writing once it belongs to uid 1000. The
// returned error wraps fs.ErrNotExist only when src does not exist.
func copyFile(src, dst string, opts stageOptions) (int64, error) {
	// Opened without blocking and checked on the descriptor: a FIFO or a
	// device at src is refused instead of hanging the init container.
	in, err := boundedread.Open(src, os.O_RDONLY, 0, "a regular file")
	var typeErr *boundedread.FileTypeError
	if errors.As(err, &typeErr) {
		return 0, err
	}
	if errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	if errors.Is(err, fs.ErrPermission) {
		return 0, fmt.Errorf("cannot read %s: %w (stage runs as root, with CAP_DAC_READ_SEARCH if the file is not root's)", src, unwrapPath(err))
	}
	if err != nil {
		return 0, fmt.Errorf("cannot open %s: %w", src, unwrapPath(err))
	}
	defer in.Close()

	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("cannot create staging directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".*")
	if err != nil {
		return 0, fmt.Errorf("cannot write to staging directory %s: %w", dir, unwrapPath(err))
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// Read to EOF: sysfs reports the CCEL data size, but securityfs logs
	// report 0 and are only known once read.
	n, err := io.Copy(tmp, in)
	if err != nil {
		return 0, fmt.Errorf("cannot copy %s to %s: %w", src, tmp.Name(), unwrapPath(err))
	}
	if err := tmp.Chmod(opts.mode); err != nil {
		return 0, fmt.Errorf("cannot set mode %04o on %s: %w", opts.mode, tmp.Name(), unwrapPath(err))
	}
	if opts.uid != -1 || opts.gid != -1 {
		if err := tmp.Chown(opts.uid, opts.gid); err != nil {
			return 0, fmt.Errorf("cannot give %s to %d:%d: %w (stage needs CAP_CHOWN)", tmp.Name(), opts.uid, opts.gid, unwrapPath(err))
		}
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("cannot write %s: %w", tmp.Name(), unwrapPath(err))
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return 0, fmt.Errorf("cannot move %s into place: %w", dst, err)
	}
	done = true
	return n, nil
}

// ownDir creates dir if needed and gives it to uid:gid with ownedDirMode.
// The mode is set before the owner because once the directory is not root's,
// changing its mode would take CAP_FOWNER, which the init container does not
// have; a directory already set up by an earlier run is left as it is.
func ownDir(dir string, uid, gid int) error {
	// Through a descriptor, a symbolic link in its place refused: a path
	// could be swapped between the check and the chown.
	f, err := dirfd.Open(dir, ownedDirMode)
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot stat %s: %w", dir, unwrapPath(err))
	}
	if fi.Mode().Perm() != ownedDirMode {
		if err := f.Chmod(ownedDirMode); err != nil {
			return fmt.Errorf("cannot set mode %04o on %s: %w", ownedDirMode, dir, unwrapPath(err))
		}
	}
	if curUID, curGID, ok := fileOwner(fi); !ok || (uid != -1 && curUID != uid) || (gid != -1 && curGID != gid) {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("cannot give %s to %d:%d: %w (stage needs CAP_CHOWN)", dir, uid, gid, unwrapPath(err))
		}
	}
	return nil
}

// unwrapPath drops the *fs.PathError wrapper from an error whose message
// already names the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// fileOwner returns the uid and gid that own a file, when the platform says.
func fileOwner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
