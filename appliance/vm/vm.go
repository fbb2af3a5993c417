// Package vm boots an appliance that gosupermin built (the ext2 or cpio
// format) in qemu, runs one command in it and gives back the command's
// output and exit status: the machinery of gosupermin --run.
//
// The architecture comes from the kernel image's header (appliance/arch's
// table gives the qemu binary, machine, devices and console). The kernel
// command line carries only wire.CmdlineFlag; the command, its stdin,
// stdout, stderr and exit status travel in appliance/vm/wire's frames on
// a virtio-serial port that qemu backs with one end of a socket pair it
// inherits, so nothing is made on disk. Shared directories are virtio 9p
// (no daemon). An ext2 root is attached as a snapshot unless Persist.
//
// With Accel "auto", KVM is used when /dev/kvm opens and the appliance
// is of this machine's architecture; if qemu then fails before the init
// says Hello, or the Hello does not come within KVMGrace (on some hosts
// qemu starts under KVM but the guest never runs), the machine is
// stopped and booted again with TCG, and Log says so once.
//
// Under TCG an x86-64 appliance boots the ELF kernel inside its bzImage
// through the PVH entry point, taken out in memory (a memfd qemu
// inherits) by kernel.Vmlinux: TCG spends seconds in the bzImage's own
// xz decompressor, more than Go takes on the host. A kernel that cannot
// boot so (no PVH note, a compression Vmlinux does not read) boots as a
// bzImage, and Detail says why. KVM boots the bzImage: its decompressor
// runs at native speed there.
package vm

import (
	"context"
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

	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/appliance/kernel"
	"github.com/gosupermin/gosupermin/appliance/vm/wire"
	"golang.org/x/sys/unix"
)

// Appliance is a bootable output of gosupermin --build.
type Appliance struct {
	Dir            string
	Kernel, Initrd string
	// Root is the ext2 format's root image; empty for cpio.
	Root string
	Arch *arch.Arch
	// KernelFormat is the kernel file's: an ELF kernel (gosupermin's
	// default OUT/kernel on x86-64) is booted as it is, through PVH.
	KernelFormat arch.ImageFormat
}

// Format is "ext2" or "cpio".
func (a *Appliance) Format() string {
	if a.Root != "" {
		return "ext2"
	}
	return "cpio"
}

// ErrNotAppliance is wrapped by Open's error for a directory that is not
// a bootable appliance.
var ErrNotAppliance = errors.New("not a bootable appliance (an output of the ext2 or cpio format)")

// Open reads the appliance in dir: kernel and initrd, and root for the
// ext2 format. Its architecture is the kernel's.
func Open(dir string) (*Appliance, error) {
	a := &Appliance{Dir: dir, Kernel: filepath.Join(dir, "kernel"), Initrd: filepath.Join(dir, "initrd")}
	for _, p := range []string{a.Kernel, a.Initrd} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no %s: %w", dir, filepath.Base(p), ErrNotAppliance)
		}
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", p)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "root")); err == nil && fi.Mode().IsRegular() {
		a.Root = filepath.Join(dir, "root")
	}
	f, err := os.Open(a.Kernel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, arch.HeaderSize)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", a.Kernel, err)
	}
	name, format, err := arch.KernelArch(head[:n])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Kernel, err)
	}
	t, ok := arch.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%s: a kernel for %s: %w (%s)", a.Kernel, name, arch.ErrNotInTable, strings.Join(arch.Names(), ", "))
	}
	if !format.Direct() {
		return nil, fmt.Errorf("%s: an %s: qemu does not boot it without EFI firmware", a.Kernel, format)
	}
	a.Arch = t
	a.KernelFormat = format
	return a, nil
}

// Share is a host directory mounted in the guest.
type Share struct {
	HostDir  string // absolute
	GuestDir string // absolute, not /
	ReadOnly bool
}

// Options say how the machine is made.
type Options struct {
	Shares    []Share
	MemoryMiB int    // 1024 if 0
	SMP       int    // qemu's default (1) if 0
	Accel     string // "auto" (or ""), "kvm" or "tcg"
	// Persist attaches the ext2 root read-write: what the command
	// changes in it stays. Otherwise qemu writes to a temporary overlay.
	Persist bool
	// Qemu is the qemu-system binary; empty: the architecture's, from PATH.
	Qemu string
	// Append is added to the kernel command line.
	Append string
	// Console receives the serial console (kernel and init messages,
	// not quiet) as it comes; nil keeps only its end, for errors.
	Console io.Writer
	// Log receives messages (the fall back from KVM to TCG).
	Log func(msg string)
	// Detail receives details for the curious (how the kernel is
	// booted, and why); nil drops them.
	Detail func(msg string)
	// KVMGrace is how long a KVM machine has to say Hello before
	// Accel "auto" gives up on KVM; DefaultKVMGrace if 0.
	KVMGrace time.Duration
}

// DefaultKVMGrace: a KVM appliance reaches its init in about a second.
const DefaultKVMGrace = 10 * time.Second

// channelEndWait is how long qemu has to stop after the run channel
// ended without an exit status (the init powers off after a failure).
const channelEndWait = 30 * time.Second

// Command is what runs in the guest, and its streams on the host.
type Command struct {
	// Args is the command; empty runs a shell (on the terminal when
	// Terminal, else reading its commands from Stdin).
	Args []string
	// Dir is the working directory in the guest; "/" if empty.
	Dir string
	// Env is added to the guest's PATH, HOME, TERM and LANG.
	Env []string
	// Stdin is read until its end or until the machine stops (a read in
	// progress may outlast Wait); nil is empty.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Terminal runs the command on the serial console, which qemu puts
	// on TerminalIn and TerminalOut (a person's terminal; Ctrl+A X stops
	// qemu); Stdin, Stdout and Stderr are then not used.
	Terminal                bool
	TerminalIn, TerminalOut *os.File
	Rows, Cols              uint16
}

// ErrNoQemu is wrapped by Start's error when the qemu binary is missing.
var ErrNoQemu = errors.New("qemu is not installed")

// Machine is a running appliance.
type Machine struct {
	done   chan struct{}
	status int
	err    error
}

// Start boots the appliance and runs c in it; Wait gives the result.
// Cancelling ctx stops the machine.
func Start(ctx context.Context, a *Appliance, o Options, c Command) (*Machine, error) {
	if a.Arch == nil {
		return nil, errors.New("the appliance's architecture is unknown")
	}
	if o.Qemu == "" {
		p, err := exec.LookPath(a.Arch.Qemu.Binary)
		if err != nil {
			return nil, fmt.Errorf("%w: %s, for %s appliances, is not on PATH (Debian: %s)", ErrNoQemu, a.Arch.Qemu.Binary, a.Arch.Name, qemuPackage(a.Arch))
		}
		o.Qemu = p
	}
	for _, s := range o.Shares {
		if !filepath.IsAbs(s.HostDir) || !filepath.IsAbs(s.GuestDir) || filepath.Clean(s.GuestDir) == "/" {
			return nil, fmt.Errorf("share %s at %s: both must be absolute and the guest's not /", s.HostDir, s.GuestDir)
		}
		if fi, err := os.Stat(s.HostDir); err != nil {
			return nil, fmt.Errorf("share: %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("share %s: not a directory", s.HostDir)
		}
	}
	if c.Terminal && (c.TerminalIn == nil || c.TerminalOut == nil) {
		return nil, errors.New("a command on the terminal needs the terminal's files")
	}
	accel := o.Accel
	switch accel {
	case "", "auto":
		accel = "tcg"
		if a.Arch == arch.Native() && kvmUsable() {
			accel = "auto"
		}
	case "kvm", "tcg":
	default:
		return nil, fmt.Errorf("accelerator %q: use auto, kvm or tcg", o.Accel)
	}
	if o.KVMGrace <= 0 {
		o.KVMGrace = DefaultKVMGrace
	}
	m := &Machine{done: make(chan struct{})}
	go func() {
		defer close(m.done)
		// A Run boots under TCG once at most, and the ELF kernel is
		// taken out for that boot only.
		pvh := newPVHFuture(ctx, a, o)
		defer pvh.close()
		switch accel {
		case "tcg":
			m.status, m.err = attempt(ctx, a, o, c, boot{accel: "tcg", elf: pvh.get()})
			return
		case "kvm":
			m.status, m.err = attempt(ctx, a, o, c, boot{accel: "kvm"})
			return
		}
		// A KVM appliance says Hello in about a second: one that has
		// not halfway through its grace is likely to need TCG, and the
		// ELF kernel is taken out meanwhile, on the other CPU.
		t := time.AfterFunc(o.KVMGrace/2, pvh.start)
		m.status, m.err = attempt(ctx, a, o, c, boot{accel: "kvm", probing: true, hello: func() {
			t.Stop()
			pvh.close()
		}})
		t.Stop()
		var broken *kvmBroken
		if errors.As(m.err, &broken) {
			if o.Log != nil {
				o.Log(fmt.Sprintf("KVM does not work on this machine (%s): using TCG, which is slower", broken.why))
			}
			m.status, m.err = attempt(ctx, a, o, c, boot{accel: "tcg", elf: pvh.get()})
		}
	}()
	return m, nil
}

// pvhFuture is the ELF kernel of a TCG boot (pvhKernel), taken out once
// on a goroutine of its own from when it is started or wanted.
type pvhFuture struct {
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	done   chan struct{}
	elf    *os.File
	a      *Appliance
	o      Options
}

func newPVHFuture(ctx context.Context, a *Appliance, o Options) *pvhFuture {
	p := &pvhFuture{done: make(chan struct{}), a: a, o: o}
	p.ctx, p.cancel = context.WithCancel(ctx)
	return p
}

func (p *pvhFuture) start() {
	p.once.Do(func() {
		go func() {
			defer close(p.done)
			p.elf = pvhKernel(p.ctx, p.a, p.o)
		}()
	})
}

// get waits for the ELF kernel; nil to boot the bzImage.
func (p *pvhFuture) get() *os.File {
	p.start()
	<-p.done
	return p.elf
}

// close stops the work if it is going on, or keeps it from starting,
// and closes the memfd. Only the goroutine that calls get calls it.
func (p *pvhFuture) close() {
	p.cancel()
	if f := p.get(); f != nil {
		f.Close()
		p.elf = nil
	}
}

// Wait waits for the command and returns its exit status (0-255; 128+N
// for a command killed by signal N), or an error: the machine did not
// run it (*BootError), ctx was cancelled, qemu failed.
func (m *Machine) Wait() (int, error) {
	<-m.done
	return m.status, m.err
}

func qemuPackage(a *arch.Arch) string {
	switch a.Name {
	case "amd64":
		return "apt-get install qemu-system-x86"
	case "arm64":
		return "apt-get install qemu-system-arm"
	case "ppc64le":
		return "apt-get install qemu-system-ppc"
	}
	return "apt-get install qemu-system-misc"
}

// kvmUsable says whether /dev/kvm opens for reading and writing.
var kvmUsable = func() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// kvmBroken is an attempt under KVM that never reached the init.
type kvmBroken struct{ why string }

func (e *kvmBroken) Error() string { return "KVM: " + e.why }

// BootError is a machine that stopped without the command's status.
type BootError struct {
	// Reason says how it ended.
	Reason string
	// Last is what the console showed last that tells why (an init
	// error, a kernel panic, else the last line); Qemu is qemu's own
	// last message.
	Last, Qemu string
}

func (e *BootError) Error() string {
	msg := "the appliance did not run the command: " + e.Reason
	if e.Last != "" {
		msg += fmt.Sprintf("; the console showed last: %q", e.Last)
	} else {
		msg += "; the console showed nothing"
	}
	if e.Qemu != "" {
		msg += fmt.Sprintf("; qemu said: %q", e.Qemu)
	}
	return msg
}

// FailError is the init's own report that it could not run the command.
type FailError struct{ Msg string }

func (e *FailError) Error() string { return "the appliance could not run the command: " + e.Msg }

// tags are the 9p mount tags of the shares.
func tag(i int) string { return fmt.Sprintf("gosupermin%d", i) }

// pvhKernel returns, for an x86-64 appliance, a memfd holding the ELF
// kernel inside its bzImage, for qemu to boot through the PVH entry
// point; nil, and why in o.Detail, when the kernel cannot boot so. It is
// in memory because nothing is to be left on disk, and made afresh each
// Run because a cache of it would be one more thing to keep in step with
// the kernel it comes from.
func pvhKernel(ctx context.Context, a *Appliance, o Options) *os.File {
	detail := func(format string, args ...any) {
		if o.Detail != nil {
			o.Detail(fmt.Sprintf(format, args...))
		}
	}
	if a.Arch == nil || a.Arch.Name != "amd64" || ctx.Err() != nil {
		return nil
	}
	if a.KernelFormat == arch.ELFImage {
		detail("booting %s, an ELF kernel, through PVH", a.Kernel)
		return nil
	}
	start := time.Now()
	f, err := vmlinuxMemfd(ctx, a.Kernel)
	if ctx.Err() != nil {
		// Not wanted any more: KVM works, or the Run was stopped.
		if f != nil {
			f.Close()
		}
		return nil
	}
	if err != nil {
		detail("booting %s as it is, not the ELF kernel inside it through PVH (faster under TCG): %v", a.Kernel, err)
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		detail("booting %s as it is: the ELF kernel taken out of it: %v", a.Kernel, err)
		return nil
	}
	detail("booting the ELF kernel inside %s through PVH (%d MiB, taken out in %.2f s): TCG is slow at the bzImage's own decompressor",
		a.Kernel, fi.Size()>>20, time.Since(start).Seconds())
	return f
}

// vmlinuxMemfd writes the ELF kernel inside the bzImage at path to a
// memfd; it stops when ctx is done.
func vmlinuxMemfd(ctx context.Context, path string) (*os.File, error) {
	in, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("gosupermin-vmlinux", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "vmlinux (memfd)")
	if _, err := kernel.Vmlinux(in, fi.Size(), ctxWriter{ctx, f}); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ctxWriter fails once ctx is done, to stop the copy it ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// boot is how an attempt boots.
type boot struct {
	accel string
	// probing says a failure before Hello is KVM's (*kvmBroken).
	probing bool
	// elf, if not nil, is the kernel to boot instead of a.Kernel: the
	// ELF inside it, through PVH.
	elf *os.File
	// hello, if not nil, is called when the init says Hello.
	hello func()
}

// attempt boots once, as b says.
func attempt(ctx context.Context, a *Appliance, o Options, c Command, b boot) (int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("socket pair: %w", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return 0, err
	}
	port := os.NewFile(uintptr(fds[0]), "run channel")
	qemuEnd := os.NewFile(uintptr(fds[1]), "run channel (qemu's end)")
	defer port.Close()

	q, req := machine(a, o, c, b.accel, b.elf != nil)
	// qemu's descriptors: 3 the run channel, 4 the ELF kernel if any.
	extra := []*os.File{qemuEnd}
	if b.elf != nil {
		extra = append(extra, b.elf)
	}
	p, err := startQemu(o, c, a.Arch.Args(q), extra)
	// qemu has its copy: ours closed, the channel ends when qemu does.
	qemuEnd.Close()
	if err != nil {
		return 0, err
	}

	hello := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	go send(port, req, c, hello, stop)
	result := make(chan frameResult, 1)
	go func() { result <- receive(port, c, hello) }()

	var grace <-chan time.Time
	if b.probing {
		t := time.NewTimer(o.KVMGrace)
		defer t.Stop()
		grace = t.C
	}
	helloSeen := hello
	for {
		select {
		case <-helloSeen:
			grace, helloSeen = nil, nil
			if b.hello != nil {
				b.hello()
			}
		case r := <-result:
			if r.exit {
				// The guest has synced: nothing is lost by stopping it now.
				p.stop()
				return r.status, nil
			}
			// The channel ended: qemu is going (the init powers off after
			// Fail); its exit says more. A guest that garbled the channel
			// and goes on is stopped.
			var werr error
			select {
			case werr = <-p.exited:
			case <-ctx.Done():
				p.kill()
			case <-time.After(channelEndWait):
				p.kill()
			}
			<-p.consoleDone
			return 0, ended(r, werr, p.console, p.qemuErr, b.probing)
		case werr := <-p.exited:
			port.SetReadDeadline(time.Now().Add(5 * time.Second)) // the channel's end follows qemu's
			r := <-result
			<-p.consoleDone
			if r.exit {
				return r.status, nil
			}
			return 0, ended(r, werr, p.console, p.qemuErr, b.probing)
		case <-grace:
			p.stop()
			return 0, &kvmBroken{why: fmt.Sprintf("no sign of the appliance's init after %s", o.KVMGrace)}
		case <-ctx.Done():
			p.stop()
			return 0, fmt.Errorf("the virtual machine was stopped: %w", ctx.Err())
		}
	}
}

// machine is the qemu machine of one attempt, and the request its init
// is sent. With elf, the kernel is the ELF on descriptor 4: qemu opens it
// by name, /dev/fd/4, which opens the memfd anew rather than sharing its
// offset.
func machine(a *Appliance, o Options, c Command, accel string, elf bool) (arch.QemuArgs, *wire.Req) {
	q := arch.QemuArgs{Kernel: a.Kernel, Initrd: a.Initrd, MemoryMiB: o.MemoryMiB, SMP: o.SMP, Accel: accel,
		Ports: []arch.QemuPort{{Name: wire.PortName, FD: 3}}, Terminal: c.Terminal}
	if elf {
		q.Kernel = "/dev/fd/4"
	}
	app := []string{"panic=1", wire.CmdlineFlag}
	if a.Root != "" {
		q.Disks, q.Snapshot = []string{a.Root}, !o.Persist
		app = append(app, "root=/dev/"+a.Arch.Qemu.DiskName)
	}
	if o.Console == nil {
		app = append(app, "quiet")
	}
	if o.Append != "" {
		app = append(app, o.Append)
	}
	q.Append = strings.Join(app, " ")
	req := &wire.Req{Args: c.Args, Dir: c.Dir, Env: c.Env, Terminal: c.Terminal, Rows: c.Rows, Cols: c.Cols}
	for i, s := range o.Shares {
		q.Shares = append(q.Shares, arch.QemuShare{Tag: tag(i), Dir: s.HostDir, ReadOnly: s.ReadOnly})
		req.Shares = append(req.Shares, wire.Share{Tag: tag(i), Path: s.GuestDir, ReadOnly: s.ReadOnly})
	}
	return q, req
}

// qemuProc is a running qemu: its exit, and the tails of its console and
// its stderr for the message of a machine that fails.
type qemuProc struct {
	cmd              *exec.Cmd
	terminal         bool
	exited           chan error
	consoleDone      chan struct{}
	console, qemuErr *tail
}

// startQemu starts qemu with args and the descriptors extra (3 and on).
// Its console is read into a tail (and o.Console), unless on a terminal.
func startQemu(o Options, c Command, args []string, extra []*os.File) (*qemuProc, error) {
	cmd := exec.Command(o.Qemu, args...)
	cmd.ExtraFiles = extra
	p := &qemuProc{cmd: cmd, terminal: c.Terminal, exited: make(chan error, 1), consoleDone: make(chan struct{}),
		console: &tail{max: 16 << 10}, qemuErr: &tail{max: 4 << 10}}
	cmd.Stderr = p.qemuErr
	if o.Console != nil {
		cmd.Stderr = io.MultiWriter(p.qemuErr, o.Console)
	}
	var consoleR, consoleW *os.File
	if c.Terminal {
		cmd.Stdin, cmd.Stdout = c.TerminalIn, c.TerminalOut
		// qemu reads the terminal: it stays in its process group.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	} else {
		var err error
		if consoleR, consoleW, err = os.Pipe(); err != nil {
			return nil, err
		}
		cmd.Stdout = consoleW
		// A group of its own: the terminal's Ctrl+C comes to us, and we
		// stop the machine. Pdeathsig: it never outlives us.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	err := cmd.Start()
	if consoleW != nil {
		consoleW.Close() // qemu has its copy
	}
	if err != nil {
		if consoleR != nil {
			consoleR.Close()
		}
		return nil, fmt.Errorf("start %s: %w", o.Qemu, err)
	}
	if consoleR != nil {
		go func() {
			defer close(p.consoleDone)
			defer consoleR.Close()
			var w io.Writer = p.console
			if o.Console != nil {
				w = io.MultiWriter(p.console, o.Console)
			}
			_, _ = io.Copy(w, consoleR)
		}()
	} else {
		close(p.consoleDone)
	}
	go func() { p.exited <- cmd.Wait() }()
	return p, nil
}

// kill stops qemu and waits for it. On a terminal, qemu puts the terminal
// back as it was only when it exits by itself: SIGTERM first, SIGKILL
// only if that is not enough.
func (p *qemuProc) kill() {
	if !p.terminal {
		_ = p.cmd.Process.Kill()
		<-p.exited
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// stop kills qemu and waits for the last of its console.
func (p *qemuProc) stop() {
	p.kill()
	<-p.consoleDone
}

// ended explains a machine that stopped without an exit status.
func ended(r frameResult, werr error, console, qemuErr *tail, probing bool) error {
	if r.fail != "" {
		return &FailError{Msg: r.fail}
	}
	if probing && !r.hello && werr != nil {
		// qemu failed before the guest ran: KVM's fault, not the appliance's.
		return &kvmBroken{why: "qemu failed: " + lastLine(qemuErr.String())}
	}
	reason := "the virtual machine stopped before the command's exit status came"
	if !r.hello {
		reason = "the virtual machine stopped before the init answered"
	}
	if werr != nil {
		reason += fmt.Sprintf(" (qemu: %v)", werr)
	}
	return &BootError{Reason: reason, Last: telling(console.String()), Qemu: lastLine(qemuErr.String())}
}

// frameResult is how the run channel ended.
type frameResult struct {
	hello  bool
	exit   bool
	status int
	fail   string
}

// receive reads the guest's frames: output to the command's writers,
// then the exit status.
func receive(port io.Reader, c Command, hello chan struct{}) frameResult {
	var r frameResult
	for {
		t, p, err := wire.Read(port)
		if err != nil {
			return r
		}
		switch t {
		case wire.Hello:
			if !r.hello {
				r.hello = true
				close(hello)
			}
		case wire.Stdout:
			if c.Stdout != nil {
				_, _ = c.Stdout.Write(p)
			}
		case wire.Stderr:
			if c.Stderr != nil {
				_, _ = c.Stderr.Write(p)
			}
		case wire.Exit:
			st, err := wire.ParseExit(p)
			if err != nil {
				r.fail = err.Error()
				return r
			}
			r.exit, r.status = true, st
			return r
		case wire.Fail:
			r.fail = string(p)
		}
	}
}

// send writes the request, then (once the guest is up: a retry must find
// stdin unread) stdin.
func send(port io.Writer, req *wire.Req, c Command, hello, stop chan struct{}) {
	if wire.Write(port, wire.Request, req.Marshal()) != nil {
		return
	}
	if c.Terminal {
		return
	}
	if c.Stdin == nil {
		_ = wire.Write(port, wire.Stdin, nil)
		return
	}
	select {
	case <-hello:
	case <-stop:
		return
	}
	buf := make([]byte, wire.Chunk)
	for {
		n, err := c.Stdin.Read(buf)
		if n > 0 {
			select {
			case <-stop:
				return
			default:
			}
			if wire.Write(port, wire.Stdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			_ = wire.Write(port, wire.Stdin, nil)
			return
		}
	}
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// lastLine is the last non-empty line of s, cleaned of \r.
func lastLine(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r", ""), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// telling picks the console line that says why a boot failed: the init's
// error, the kernel's panic, else the last line that is not the power
// off itself.
func telling(console string) string {
	lines := strings.Split(strings.ReplaceAll(console, "\r", ""), "\n")
	for _, marker := range []string{"gosupermin init: error:", "Kernel panic - not syncing:"} {
		for i := len(lines) - 1; i >= 0; i-- {
			if j := strings.Index(lines[i], marker); j >= 0 {
				return strings.TrimSpace(lines[i][j:])
			}
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.Contains(l, "reboot: Power down") && !strings.Contains(l, "reboot: Restarting") {
			return l
		}
	}
	return ""
}
