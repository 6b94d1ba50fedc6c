package uiddial_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ccnp-eventlog/ccnp-eventlog/internal/uiddial"
)

func TestDialAsAnotherUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir, err := os.MkdirTemp("", "uiddial-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Chmod(path, 0o777)

	// A child started with a Pdeathsig dies with the thread that started
	// it: Dial must not end threads, whichever it runs on. With one P, the
	// goroutines below mostly run on the thread that started the child.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var child *exec.Cmd
	var wg sync.WaitGroup
	wg.Go(func() {
		child = exec.Command("sleep", "60")
		child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := child.Start(); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	if child.Process == nil {
		t.FailNow()
	}
	defer child.Process.Kill()

	for range 50 {
		c, err := uiddial.Dial(65534, path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := s.(*net.UnixConn).SyscallConn()
		var cred *unix.Ucred
		raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
		if err != nil || cred.Uid != 65534 {
			t.Fatalf("peer credentials %+v, %v; want uid 65534", cred, err)
		}
		c.Close()
		s.Close()
	}
	// Every thread is still root: files only root may create can be.
	for range 50 {
		f, err := os.CreateTemp("/root", ".uiddial-")
		if err != nil {
			t.Fatalf("a thread lost root: %v", err)
		}
		f.Close()
		os.Remove(f.Name())
	}
	var ws syscall.WaitStatus
	if pid, err := syscall.Wait4(child.Process.Pid, &ws, syscall.WNOHANG, nil); pid != 0 || err != nil {
		t.Errorf("the child started with a Pdeathsig has exited (%v, %v): a thread that started it was ended", ws, err)
	}
}
