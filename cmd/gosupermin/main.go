// Command gosupermin builds supermin appliances: --prepare records package
// roots in a supermin.d, --build turns it into a chroot, ext2 or cpio appliance.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/gosupermin/gosupermin/appliance/arch"
	"github.com/gosupermin/gosupermin/appliance/ext2"
	"github.com/gosupermin/gosupermin/appliance/initproc"
	"github.com/gosupermin/gosupermin/appliance/kernel"
	"github.com/gosupermin/gosupermin/internal/outdir"
	"github.com/gosupermin/gosupermin/internal/rootfs"
	"github.com/gosupermin/gosupermin/supermin"
)

// Version is what --version prints; libguestfs's configure reads its
// second field and wants supermin >= 5.
const Version = "5.3.99"

const usage = `gosupermin - build supermin appliances (supermin 5 compatible)

Usage:
  gosupermin --prepare PACKAGE... -o SUPERMIN.D
  gosupermin --build -f chroot|ext2|cpio INPUT... -o OUTPUT

Options:
  --build                  build an appliance from supermin.d inputs
  --prepare                record package roots and config files in a supermin.d
  -o DIR                   output directory (required)
  -f, --format FMT         chroot (alias fs, filesystem), ext2 or cpio
  --root DIR               use the package database and files under DIR, not /
  --size SIZE              ext2 image size, e.g. 4G (suffix b, K, M or G; default 4G)
  --copy-kernel            copy the kernel instead of symlinking it
  --host-cpu ARCH          prefer kernels for this CPU model
  --compress zstd|gzip|none  compression of the cpio initramfs (default zstd)
  --firstboot              save maintainer scripts and run them on first boot
  --init FILE              the initrd's init program (a static binary of the
                           appliance's architecture; default: found, see below)
  --include-packagelist    write /packagelist in the appliance
  --if-newer               do nothing if OUTPUT is newer than every input
  --lock FILE              serialise concurrent runs on FILE
  --list-drivers           list package-database drivers and exit
  --use-installed, --packager-config FILE, --dtb X
                           accepted for supermin 5 compatibility
  -v, --verbose            more messages (repeatable)
  -V, --version            print the version and exit
  --help                   this text

Environment:
  SUPERMIN_KERNEL, SUPERMIN_KERNEL_VERSION, SUPERMIN_MODULES  choose the kernel
  SOURCE_DATE_EPOCH        time of every made-up timestamp (reproducible builds)
  GOSUPERMIN_INIT          the init program, as --init (which wins)
  GOSUPERMIN_ROOT_UUID     ext2 UUID: "random" or a UUID (default: derived from the content)

The init program of an appliance of architecture ARCH (amd64, arm64, riscv64,
ppc64le, s390x: from the package database and the kernel) is the first of:
--init, GOSUPERMIN_INIT, init-ARCH beside this program (bin/ after make build),
../lib/gosupermin/init-ARCH from it (an install), linux_ARCH/gosupermin-init
beside it (a cross go install), /usr/local/lib/gosupermin/init-ARCH,
/usr/lib/gosupermin/init-ARCH, and for this machine's architecture this
program itself.
`

func main() {
	if initproc.IsInit() { // the appliance's /init: see appliance/initproc
		initproc.Main()
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	c, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "gosupermin: %v\nRun 'gosupermin --help' for the options.\n", err)
		return 2
	}
	switch {
	case c.help:
		fmt.Fprint(stdout, usage)
		return 0
	case c.version:
		fmt.Fprintf(stdout, "gosupermin %s (supermin 5 compatible)\n", Version)
		return 0
	case c.listDrivers:
		root := c.root
		if root == "" {
			root = "/"
		}
		tree, err := rootfs.Open(root)
		if err != nil {
			fmt.Fprintf(stderr, "gosupermin: %v\n", err)
			return 1
		}
		defer tree.Close()
		for _, d := range supermin.Drivers {
			state := "not-detected"
			if d.Detect(tree.FS()) {
				state = "detected"
			}
			fmt.Fprintf(stdout, "%s\t%s\n", d.Name, state)
		}
		return 0
	}
	if err := c.check(); err != nil {
		fmt.Fprintf(stderr, "gosupermin: %v\nRun 'gosupermin --help' for the options.\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := c.exec(ctx, stderr); err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted: the previous output, if any, is unchanged")
		}
		fmt.Fprintf(stderr, "gosupermin: %v\n", err)
		return 1
	}
	return 0
}

func (c *cli) check() error {
	switch {
	case c.mode == "":
		return usageError{"use --prepare or --build"}
	case c.out == "":
		return usageError{"-o is required"}
	case len(c.args) == 0 && c.mode == "prepare":
		return usageError{"--prepare needs at least one package"}
	case len(c.args) == 0:
		return usageError{"--build needs at least one input (a supermin.d directory or file)"}
	case c.mode == "build" && c.format == "":
		return usageError{"--build needs -f chroot, ext2 or cpio"}
	}
	return nil
}

func (c *cli) exec(ctx context.Context, stderr io.Writer) error {
	if c.lock != "" {
		unlock, err := outdir.Lock(c.lock, c.out)
		if err != nil {
			return err
		}
		defer unlock()
	}
	env, err := readEnv(os.LookupEnv)
	if err != nil {
		return err
	}
	opts := supermin.Options{
		Root: c.root, Verbose: c.verbose, Epoch: env.epoch,
		Log: func(_ int, msg string) { fmt.Fprintf(stderr, "gosupermin: %s\n", msg) },
	}
	if c.mode == "prepare" {
		return supermin.Prepare(ctx, supermin.PrepareOptions{Options: opts, Packages: c.args, Out: c.out})
	}
	format, err := c.formatOf(env)
	if err != nil {
		return err
	}
	return explain(supermin.Build(ctx, supermin.BuildOptions{
		Options: opts, Inputs: c.args, Out: c.out, Format: format,
		IncludePackageList: c.includePackageList, IfNewer: c.ifNewer, Firstboot: c.firstboot,
	}), c)
}

// formatOf makes the -f format with its options.
func (c *cli) formatOf(env environment) (supermin.Format, error) {
	if c.format == "chroot" {
		return supermin.Chroot{}, nil
	}
	boot := supermin.Boot{
		Kernel:     kernel.Options{HostCPU: c.hostCPU, Kernel: env.kernel, Version: env.kernelVersion, Modules: env.modules},
		CopyKernel: c.copyKernel, Init: c.init,
	}
	if boot.Init == "" {
		boot.Init = env.init
	}
	if boot.Init == "" {
		// Searched once the build knows the appliance's architecture.
		boot.FindInit = func(target *arch.Arch) (string, error) {
			exe, err := os.Executable()
			if err != nil {
				exe = "" // only the system directories, then
			}
			return arch.FindInit(target, exe)
		}
	}
	if c.format == "cpio" {
		return &supermin.CPIO{Boot: boot, Compress: c.compress}, nil
	}
	return &supermin.Ext2{Boot: boot, Size: c.size, UUID: env.rootUUID, RandomUUID: env.randomUUID}, nil
}

// explain adds to a build error the advice that names this command's
// options and environment, which the library does not know.
func explain(err error, c *cli) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ext2.ErrNoSpace):
		return fmt.Errorf("%w; use a larger --size (it is %s)", err, supermin.HumanSize(c.size))
	case errors.Is(err, kernel.ErrNotFound):
		return fmt.Errorf("%w, or set SUPERMIN_KERNEL to a kernel image and SUPERMIN_MODULES to its module directory "+
			"(containers and WSL have no kernel of their own)", err)
	case errors.Is(err, kernel.ErrNoVersion):
		return fmt.Errorf("%w; set SUPERMIN_KERNEL_VERSION to its release", err)
	case errors.Is(err, kernel.ErrNoModules):
		return fmt.Errorf("%w, or set SUPERMIN_MODULES", err)
	case errors.Is(err, kernel.ErrUnreadable):
		return fmt.Errorf("%w, or set SUPERMIN_KERNEL to a readable copy", err)
	case errors.Is(err, arch.ErrNoInit):
		return fmt.Errorf("%w; then give it with --init FILE (or GOSUPERMIN_INIT=FILE), or put it where gosupermin looks", err)
	case errors.Is(err, arch.ErrNotInTable):
		return fmt.Errorf("%w with --init FILE", err)
	case errors.Is(err, arch.ErrInitArch):
		return fmt.Errorf("%w, and give it with --init FILE (or GOSUPERMIN_INIT=FILE)", err)
	case errors.Is(err, arch.ErrMismatch) && c.hostCPU != "":
		return fmt.Errorf("%w (the host CPU asked for is --host-cpu %s)", err, c.hostCPU)
	}
	return err
}
