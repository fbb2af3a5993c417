package initproc

// Run mode (gosupermin --run): with gosupermin.run=1 on the kernel
// command line, init runs the host's command instead of the appliance's
// init, then powers off. The command, its output and its exit status
// travel on a virtio-serial port in appliance/vm/wire's frames:
//
//  1. After loading the modules, init opens the port, says Hello (the
//     host's sign that the machine runs) and reads the Request.
//  2. Once the root is the appliance's and first-boot scripts have run,
//     it mounts /proc, /sys, /dev (with /dev/pts and /dev/shm), and tmpfs
//     on /tmp and /run, mounts the shares (virtio 9p), and starts the
//     command as root in the request's directory, in a session of its
//     own, with a sane PATH: on pipes whose data it sends as Stdout and
//     Stderr frames and fed from Stdin frames, or on the serial console
//     as its controlling terminal (an interactive shell).
//  3. When the command exits, init kills what it left behind (its output
//     pipes then close), unmounts the shares and removes the mount points
//     it made, syncs and remounts / read-only (a persistent root is left
//     clean), and sends Exit. The host stops the machine on Exit; init
//     powers off by itself if it is still running a while later.
//
// A failure before the command starts is sent as Fail and shown on the
// console.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gosupermin/gosupermin/appliance/vm/wire"
	"golang.org/x/sys/unix"
)

// runState is the channel to the host.
type runState struct {
	port *os.File
	mu   sync.Mutex // one frame at a time
	req  *wire.Req
}

// How long init waits for the port's device, and for the host to stop
// the machine after Exit.
const (
	portWait      = 30 * time.Second
	afterExitWait = 30 * time.Second
)

// runPath is the command's PATH.
const runPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func (r *runState) send(t wire.Type, p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return wire.Write(r.port, t, p)
}

// runOpen finds the port, says Hello and reads the request.
func (in *initState) runOpen() error {
	dev, err := findPort("/sys/class/virtio-ports", wire.PortName, portWait)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join("/dev", dev), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open the run channel: %w", err)
	}
	r := &runState{port: f}
	if err := r.send(wire.Hello, []byte(wire.Version)); err != nil {
		return fmt.Errorf("run channel: %w", err)
	}
	for r.req == nil {
		t, p, err := wire.Read(f)
		if err != nil {
			return fmt.Errorf("run channel: reading the request: %w", err)
		}
		if t == wire.Request {
			if r.req, err = wire.ParseReq(p); err != nil {
				return err
			}
		}
	}
	in.rs = r
	if len(r.req.Shares) > 0 {
		// No device asks for the file system; and after the switch to
		// the root the initrd's modules are out of reach.
		in.needModules("9pnet_virtio", "9p")
	}
	in.logf("run mode: %d argument(s), directory %q, %d share(s)", len(r.req.Args), r.req.Dir, len(r.req.Shares))
	return nil
}

// findPort waits for the virtio-serial port called name under sysDir
// (/sys/class/virtio-ports/vport0p1/name) and returns its device name.
func findPort(sysDir, name string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		ents, _ := os.ReadDir(sysDir)
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(sysDir, e.Name(), "name"))
			if err == nil && strings.TrimSpace(string(b)) == name {
				return e.Name(), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the run channel (virtio-serial port %s) did not appear within %s: is virtio_console in the initrd?", name, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runFail tells the host why the command cannot run, in run mode.
func (in *initState) runFail(err error) {
	if in.rs != nil {
		_ = in.rs.send(wire.Fail, []byte(err.Error()))
	}
}

// runMounts are what the command finds mounted, in order.
var runMounts = []struct {
	dir, fs string
	flags   uintptr
	data    string
}{
	{"/proc", "proc", unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV, ""},
	{"/sys", "sysfs", unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV, ""},
	{"/dev", "devtmpfs", unix.MS_NOSUID, ""},
	{"/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=620,ptmxmode=666"},
	{"/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=755"},
	{"/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

// runCommand runs the request and powers off; it never returns.
func (in *initState) runCommand() {
	r := in.rs
	status, err := in.runRequest(r)
	if err != nil {
		in.fatal(err) // sends Fail
	}
	if err := r.send(wire.Exit, wire.ExitPayload(status)); err != nil {
		in.warnf("run channel: %v", err)
	}
	// The host stops the machine once it has the status; powering off
	// first could lose output qemu has not passed on yet.
	time.Sleep(afterExitWait)
	in.fatal(errors.New("the host did not stop the machine after the command"))
}

// runRequest sets up the command's world, runs it and tidies up; it
// returns the exit status.
func (in *initState) runRequest(r *runState) (int, error) {
	req := r.req
	for _, m := range runMounts {
		_ = os.MkdirAll(m.dir, 0o755)
		if err := unix.Mount(m.fs, m.dir, m.fs, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			in.warnf("mount %s on %s: %v", m.fs, m.dir, err)
		}
	}
	var made []string // mount points init made, to remove after
	var mounted []string
	unshare := func() {
		for i := len(mounted) - 1; i >= 0; i-- {
			_ = unix.Unmount(mounted[i], unix.MNT_DETACH)
		}
		for i := len(made) - 1; i >= 0; i-- {
			_ = unix.Rmdir(made[i])
		}
		mounted, made = nil, nil
	}
	defer unshare()
	for _, s := range req.Shares {
		if !filepath.IsAbs(s.Path) || filepath.Clean(s.Path) == "/" {
			return 0, fmt.Errorf("share %s: cannot mount it at %q", s.Tag, s.Path)
		}
		made = append(made, mkdirs(filepath.Clean(s.Path))...)
		var flags uintptr
		if s.ReadOnly {
			flags |= unix.MS_RDONLY
		}
		if err := unix.Mount(s.Tag, s.Path, "9p", flags, "trans=virtio,version=9p2000.L,msize=262144"); err != nil {
			return 0, fmt.Errorf("mount the shared directory %s: %w (is 9p in the initrd?)", s.Path, err)
		}
		mounted = append(mounted, s.Path)
	}
	dir := req.Dir
	if dir == "" {
		dir = "/"
	}
	if err := os.Chdir(dir); err != nil {
		return 0, fmt.Errorf("the command's directory: %w", err)
	}
	// exec.Command looks the command up in init's own PATH.
	_ = os.Setenv("PATH", runPath)
	env := []string{"PATH=" + runPath, "HOME=/root", "LANG=C.UTF-8", "PWD=" + dir, "TERM=dumb"}
	if req.Terminal {
		env[len(env)-1] = "TERM=linux"
	}
	env = append(env, req.Env...)
	in.logf("running the command (%.1f s after init started)", time.Since(in.start).Seconds())
	drain(in.out)
	var status int
	var err error
	if req.Terminal {
		status, err = in.runOnTerminal(req, env)
	} else {
		status = runOnPipes(r, req, env)
	}
	// Whatever the command left running goes with it: its output pipes
	// close, and a persistent root can be left clean.
	_ = unix.Kill(-1, unix.SIGKILL)
	if err != nil {
		return 0, err
	}
	_ = os.Chdir("/")
	unshare()
	// A root kept by --persist is left clean (ext2 has no journal); on
	// a snapshot or an initramfs this changes nothing that stays.
	unix.Sync()
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		in.logf("remount / read-only: %v", err)
	}
	unix.Sync()
	return status, nil
}

// mkdirs makes dir and its missing parents; it returns those it made,
// parents first.
func mkdirs(dir string) []string {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	made := mkdirs(filepath.Dir(dir))
	if err := os.Mkdir(dir, 0o755); err == nil {
		made = append(made, dir)
	}
	return made
}

// shell is the appliance's shell: bash if it has one.
func shell() string {
	if isExecutable("/bin/bash") {
		return "/bin/bash"
	}
	return "/bin/sh"
}

// runOnPipes runs the command with its stdin, stdout and stderr on
// pipes that the run channel feeds and drains.
func runOnPipes(r *runState, req *wire.Req, env []string) int {
	args := req.Args
	if len(args) == 0 {
		args = []string{"/bin/sh"} // reads the commands from stdin
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return r.failStatus(err, 126)
	}
	go feedStdin(r.port, inW)
	outR, outW, err := os.Pipe()
	if err != nil {
		return r.failStatus(err, 126)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return r.failStatus(err, 126)
	}
	var wg sync.WaitGroup
	for _, p := range []struct {
		f *os.File
		t wire.Type
	}{{outR, wire.Stdout}, {errR, wire.Stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			forward(r, p.f, p.t)
		}()
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	status := 0
	if err := cmd.Start(); err != nil {
		status = startFailure(errW, args[0], err)
	} else {
		status = exitStatus(cmd.Wait())
	}
	inR.Close()
	outW.Close()
	errW.Close()
	// What the command left running still holds the pipes: stop it.
	_ = unix.Kill(-1, unix.SIGKILL)
	wg.Wait()
	return status
}

func (r *runState) failStatus(err error, status int) int {
	_ = r.send(wire.Stderr, []byte("gosupermin init: "+err.Error()+"\n"))
	return status
}

// startFailure says why the command did not start, as a shell would,
// and gives the shell's status: 127 not found, 126 not executable.
func startFailure(stderr io.Writer, name string, err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stderr, "gosupermin: %s: command not found in the appliance\n", name)
		return 127
	}
	fmt.Fprintf(stderr, "gosupermin: %s: %v\n", name, err)
	return 126
}

// exitStatus is the shell's view of how a process ended: its exit code,
// or 128 + the signal that killed it.
func exitStatus(err error) int {
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 126
}

// forward sends what f gives as frames of type t, until end of file.
func forward(r *runState, f *os.File, t wire.Type) {
	defer f.Close()
	buf := make([]byte, wire.Chunk)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if r.send(t, buf[:n]) != nil {
				_, _ = io.Copy(io.Discard, f) // the host is gone: drain
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// feedStdin writes Stdin frames to the command's stdin; an empty one,
// or the end of the channel, closes it. It keeps reading the channel
// after the command stops reading its stdin.
func feedStdin(port io.Reader, w *os.File) {
	open := true
	for {
		t, p, err := wire.Read(port)
		if err != nil {
			break
		}
		if t != wire.Stdin || !open {
			continue
		}
		if len(p) == 0 {
			w.Close()
			open = false
			continue
		}
		if _, err := w.Write(p); err != nil {
			w.Close()
			open = false
		}
	}
	if open {
		w.Close()
	}
}

// runOnTerminal runs the command, or a shell, on the serial console as
// its controlling terminal.
func (in *initState) runOnTerminal(req *wire.Req, env []string) (int, error) {
	name := in.p.console
	if name == "" {
		name = "console"
	}
	tty, err := os.OpenFile(filepath.Join("/dev", name), os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("open the console: %w", err)
	}
	defer tty.Close()
	if req.Rows > 0 && req.Cols > 0 {
		_ = unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: req.Rows, Col: req.Cols})
	}
	args := req.Args
	if len(args) == 0 {
		args = []string{shell()}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		return startFailure(tty, args[0], err), nil
	}
	return exitStatus(cmd.Wait()), nil
}
