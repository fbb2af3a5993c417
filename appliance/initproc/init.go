// Package initproc is gosupermin's init: the program the kernel runs from
// the layout. It is cmd/gosupermin-init, built for the appliance's
// architecture (bin/init-ARCH), or the gosupermin binary itself (static,
// CGO_ENABLED=0), which becomes init when it runs as /init, process 1.
//
// What it does:
//
//  1. Mounts /proc, /sys and devtmpfs on /dev, and makes sure it writes to
//     the console.
//  2. Loads the modules listed in /.gosupermin/modules, in that order
//     (finit_module, or init_module on old kernels).
//  3. ext2 format: waits for root= (/dev/sdX, /dev/vdX, partitions, UUID=,
//     LABEL=, MAJOR:MINOR; UUID and label are read from the ext superblock
//     of each disk) for gosupermin.rootwait= seconds (rootdelay= too,
//     default 60), mounts it on /root as ext2, then ext4 (or rootfstype=;
//     ro/rw and rootflags= are honoured), unmounts /dev, /proc and /sys,
//     frees the initramfs, and switches root (move mount + chroot).
//     This is how libguestfs boots a supermin appliance: kernel, initrd
//     and root with root=/dev/sdX or root=UUID=... on the command line.
//  4. cpio format: the initramfs is the appliance. The appliance's /init,
//     which the builder kept as /.gosupermin/appliance-init, is put back
//     at /init, /.gosupermin is removed and /dev, /proc, /sys unmounted.
//     Either way the appliance's init starts as the kernel would start it:
//     in its own tree, nothing mounted (its scripts mount what they need).
//  5. First boot: if /usr/lib/gosupermin/firstboot/run exists in the new
//     root and the command line has no gosupermin.firstboot=0, runs
//     "/bin/sh /usr/lib/gosupermin/firstboot/run" in it, with /proc, /sys
//     and /dev mounted for it (and unmounted after), a time limit (gosupermin.firstboot.timeout=,
//     default 30 minutes) and its output on the console unless quiet. The
//     runner keeps its own stamp, so it is run whenever it is there.
//  6. Executes init= if given, else the appliance's /init (ext2: /init of
//     the root; cpio: the one put back), else /sbin/init, /etc/init,
//     /bin/init, /bin/sh, with the arguments and environment the kernel
//     gave init.
//
// With gosupermin.run=1 (gosupermin --run) init runs the host's command
// instead of step 6 and powers off: see run.go.
//
// "quiet" on the command line silences everything but errors. On an error
// init says what went wrong on the console and powers the machine off.
package initproc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gosupermin/gosupermin/appliance/initrd/layout"
	"golang.org/x/sys/unix"
)

// IsInit reports whether this process was started to be init: run as
// /init (the kernel's rdinit), or as process 1 under a name ending in
// "init".
func IsInit() bool {
	if len(os.Args) == 0 {
		return os.Getpid() == 1
	}
	return os.Args[0] == layout.InitPath || (os.Getpid() == 1 && strings.HasSuffix(filepath.Base(os.Args[0]), "init"))
}

// Main runs init. It never returns.
func Main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "gosupermin init: this is the appliance's init; it runs only as process 1 from the initrd")
		os.Exit(1)
	}
	in := &initState{out: os.Stderr, start: time.Now()}
	err := in.run()
	in.fatal(err)
}

type initState struct {
	out   io.Writer
	p     params
	cfg   layout.Config
	start time.Time
	rs    *runState // gosupermin --run's channel (run.go), nil otherwise
	cp    *coldplug // what loaded the modules, for more on demand; nil without an index
}

// FirstbootRunner is the first-boot runner init runs when it is present.
const FirstbootRunner = "/usr/lib/gosupermin/firstboot/run"

func (in *initState) logf(format string, args ...any) {
	if !in.p.quiet {
		fmt.Fprintf(in.out, "gosupermin init: "+format+"\n", args...)
	}
}

func (in *initState) warnf(format string, args ...any) {
	fmt.Fprintf(in.out, "gosupermin init: "+format+"\n", args...)
}

func (in *initState) fatal(err error) {
	in.runFail(err)
	fmt.Fprintf(in.out, "gosupermin init: error: %v\n", err)
	fmt.Fprintln(in.out, "gosupermin init: powering off")
	drain(in.out)
	unix.Sync()
	time.Sleep(200 * time.Millisecond)
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// Still here (no permission, or in a container): exit; the kernel
	// panics on init's death, which at least stops the machine.
	os.Exit(1)
}

// drain waits for the console to send what was written.
func drain(w io.Writer) {
	if f, ok := w.(*os.File); ok {
		_ = unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1)
	}
}

func (in *initState) run() error {
	if err := mountEarly(); err != nil {
		return err
	}
	in.console()
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read /proc/cmdline: %w", err)
	}
	in.p = parseCmdline(string(cmdline))
	if b, err := os.ReadFile(layout.ConfigFile); err == nil {
		in.cfg = layout.ParseConfig(b)
	} else if in.p.root == "" {
		in.cfg.Format = layout.FormatCPIO
	} else {
		in.cfg.Format = layout.FormatExt2
	}
	in.logf("starting (%s appliance, kernel %s)", in.cfg.Format, in.cfg.Kernel)
	in.loadModules()
	if in.p.run {
		if err := in.runOpen(); err != nil {
			return err
		}
	}
	useInit := true // the root's /init is the appliance's (supermin's convention)
	if in.cfg.Format == layout.FormatCPIO {
		useInit = in.cfg.ApplianceInit
		err = in.cpioRoot()
	} else {
		err = in.ext2Root()
	}
	if err != nil {
		return err
	}
	in.firstboot()
	if in.rs != nil {
		in.runCommand() // powers off
	}
	initPath, err := in.chooseInit(useInit)
	if err != nil {
		return err
	}
	in.logf("running %s (%.1f s after init started)", initPath, time.Since(in.start).Seconds())
	drain(in.out)
	argv := append([]string{initPath}, os.Args[1:]...)
	err = syscall.Exec(initPath, argv, os.Environ())
	if errors.Is(err, unix.ENOENT) {
		if interp := interpreter(initPath); interp != "" {
			return fmt.Errorf("exec %s: its interpreter %s is not in the appliance (add the package that has it)", initPath, interp)
		}
	}
	return fmt.Errorf("exec %s: %w", initPath, err)
}

// interpreter is the #! interpreter of a script, if it has one.
func interpreter(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, _ := io.ReadFull(f, buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	if !strings.HasPrefix(line, "#!") {
		return ""
	}
	fields := strings.Fields(line[2:])
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}

// console makes sure fds 0-2 are the console: the kernel opens
// /dev/console before running init only if the initramfs has it.
func (in *initState) console() {
	var st unix.Stat_t
	if unix.Fstat(1, &st) == nil {
		return
	}
	f, err := os.OpenFile("/dev/console", os.O_RDWR, 0)
	if err != nil {
		return
	}
	for fd := 0; fd < 3; fd++ {
		_ = unix.Dup3(int(f.Fd()), fd, 0)
	}
	in.out = os.Stderr
}

var earlyMounts = []struct {
	dir, fs string
	flags   uintptr
}{
	{"/proc", "proc", unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV},
	{"/sys", "sysfs", unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV},
	{"/dev", "devtmpfs", unix.MS_NOSUID},
}

// mountEarly mounts /proc, /sys and devtmpfs on /dev.
func mountEarly() error {
	for _, m := range earlyMounts {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		err := unix.Mount(m.fs, m.dir, m.fs, m.flags, "")
		if err != nil && !errors.Is(err, unix.EBUSY) {
			if m.fs == "devtmpfs" {
				// Without devtmpfs, init makes the root's node itself.
				continue
			}
			return fmt.Errorf("mount %s on %s: %w", m.fs, m.dir, err)
		}
	}
	return nil
}

// loadModules loads the initrd's modules in order.
func (in *initState) loadModules() {
	if in.coldplugModules() {
		return
	}
	list, err := os.ReadFile(layout.ModulesFile)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			in.warnf("%s: %v", layout.ModulesFile, err)
		}
		return
	}
	t := time.Now()
	n, failed := 0, 0
	for _, name := range strings.Fields(string(list)) {
		if strings.Contains(name, "/") {
			continue
		}
		err := loadModule(filepath.Join(layout.KODir, name))
		switch {
		case err == nil || errors.Is(err, unix.EEXIST):
			n++
		case errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO):
			// A driver for hardware this machine does not have.
			if in.p.verbose {
				in.logf("module %s: %v", name, err)
			}
		default:
			failed++
			in.logf("module %s: %v", name, err)
		}
	}
	in.logf("loaded %d modules in %.2f s (%d failed)", n, time.Since(t).Seconds(), failed)
}

func loadModule(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.ENOSYS) {
		data, rerr := io.ReadAll(f)
		if rerr != nil {
			return rerr
		}
		err = unix.InitModule(data, "")
	}
	return err
}

// cpioRoot readies the initramfs itself as the appliance's root.
func (in *initState) cpioRoot() error {
	if in.cfg.ApplianceInit {
		if err := os.Remove(layout.InitPath); err != nil {
			return err
		}
		if err := os.Rename(layout.ApplianceInit, layout.InitPath); err != nil {
			return fmt.Errorf("put the appliance's /init back: %w", err)
		}
	} else {
		// The appliance has no /init: ours goes, so that its tree is as built.
		_ = os.Remove(layout.InitPath)
	}
	if err := os.RemoveAll(layout.Dir); err != nil {
		in.warnf("remove %s: %v", layout.Dir, err)
	}
	unmountEarly()
	return nil
}

// chooseInit picks init=, the root's /init, or the usual inits, once
// the appliance's root is /.
func (in *initState) chooseInit(useInit bool) (string, error) {
	if in.p.init != "" {
		return in.p.init, nil
	}
	cands := []string{"/sbin/init", "/etc/init", "/bin/init", "/bin/sh"}
	if useInit {
		cands = append([]string{"/init"}, cands...)
	}
	for _, c := range cands {
		if isExecutable(c) {
			return c, nil
		}
	}
	return "", fmt.Errorf("the appliance has no init: none of %s exists and init= is not set", strings.Join(cands, ", "))
}

func isExecutable(p string) bool {
	return unix.Access(p, unix.X_OK) == nil
}

// ext2Root mounts root= on /root and switches to it.
func (in *initState) ext2Root() error {
	spec, err := parseRoot(in.p.root)
	if err != nil {
		return err
	}
	in.logf("waiting for root=%s", in.p.root)
	dev, err := waitRoot(spec, "/sys", "/dev", in.p.rootWait)
	if err != nil {
		return err
	}
	if err := os.MkdirAll("/root", 0o700); err != nil {
		return err
	}
	types := in.p.rootfstype
	if len(types) == 0 {
		types = []string{"ext2", "ext4"}
	}
	var flags uintptr
	if in.p.readOnly {
		flags |= unix.MS_RDONLY
	}
	var errs []string
	mounted := ""
	for _, t := range types {
		if err := unix.Mount(dev, "/root", t, flags, in.p.rootflags); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", t, err))
			continue
		}
		mounted = t
		break
	}
	if mounted == "" {
		return fmt.Errorf("cannot mount %s on /root (%s); is the ext4 module in the initrd?", dev, strings.Join(errs, "; "))
	}
	in.logf("mounted %s (%s) on /root", dev, mounted)
	return switchRoot("/root")
}

// switchRoot unmounts /dev, /proc and /sys (the appliance's init finds
// nothing mounted, as when the kernel starts it), frees the initramfs, and
// makes newRoot the root (move mount, chroot).
func switchRoot(newRoot string) error {
	var st unix.Stat_t
	if err := unix.Stat(newRoot, &st); err != nil {
		return err
	}
	unmountEarly()
	if err := os.Chdir(newRoot); err != nil {
		return err
	}
	freeInitramfs(uint64(st.Dev))
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot %s: %w", newRoot, err)
	}
	return os.Chdir("/")
}

// unmountEarly undoes mountEarly.
func unmountEarly() {
	for _, d := range []string{"/dev", "/sys", "/proc"} {
		_ = unix.Unmount(d, unix.MNT_DETACH)
	}
}

// freeInitramfs deletes the initramfs's files (they are in RAM), as
// switch_root does, when / is a ramfs or tmpfs: never on a disk.
func freeInitramfs(newRootDev uint64) {
	var sfs unix.Statfs_t
	if err := unix.Statfs("/", &sfs); err != nil {
		return
	}
	// f_type is int32 on 32-bit machines, where the magic overflows it:
	// compare its 32 bits.
	if t := uint32(sfs.Type); t != unix.RAMFS_MAGIC && t != unix.TMPFS_MAGIC {
		return
	}
	var st unix.Stat_t
	if err := unix.Lstat("/", &st); err != nil || uint64(st.Dev) == newRootDev {
		return
	}
	removeSameDev("/", uint64(st.Dev))
}

func removeSameDev(dir string, dev uint64) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || uint64(st.Dev) != dev {
			continue // another filesystem: the new root, or a mount
		}
		if e.IsDir() {
			removeSameDev(p, dev)
			_ = unix.Rmdir(p)
		} else {
			_ = unix.Unlink(p)
		}
	}
}
